import t from 'tap'
import { sqlState } from '@roster/service-kit'
import { schemaDiff } from '@roster/service-kit/testing/schema-diff'
import { entities } from '../src/entities/index.js'
import { migrations } from '../src/migrations/index.js'

t.test("identity's entities match its migrated schema (MikroORM's schema diff is empty)", async (t) => {
  // MikroORM reads the catalog of every schema in the database; another test file dropping its schema meanwhile
  // fails the read (3F000 / 42P01), which says nothing about identity's schema: ask again.
  for (let attempt = 1; ; attempt++) {
    try {
      t.equal(await schemaDiff(t, 'identity', entities, migrations), '')
      return
    } catch (error) {
      if (attempt >= 5 || !['3F000', '42P01'].includes(sqlState(error) ?? '')) throw error
    }
  }
})
