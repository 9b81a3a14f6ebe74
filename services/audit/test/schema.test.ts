import t from 'tap'
import { schemaDiff } from '@roster/service-kit/testing/schema-diff'
import { entities } from '../src/entities/index.js'
import { migrations } from '../src/migrations/index.js'

t.test("audit's entities match its migrated schema", async (t) => {
  t.equal(await schemaDiff(t, 'audit', entities, migrations), '')
})
