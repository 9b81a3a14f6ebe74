import t from 'tap'
import { schemaDiff } from '@roster/service-kit/testing/schema-diff'
import { entities } from '../src/entities/index.js'
import { migrations } from '../src/migrations/index.js'

t.test("identity's entities match its migrated schema (MikroORM's schema diff is empty)", async (t) => {
  t.equal(await schemaDiff(t, 'identity', entities, migrations), '')
})
