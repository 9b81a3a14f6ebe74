import t from 'tap'
import { schemaDiff } from '@roster/service-kit/testing/schema-diff'
import { entities } from '../src/entities/index.js'
import { migrations } from '../src/migrations/index.js'

t.test('the entities match the migrated schema exactly', async (t) => {
  t.equal(await schemaDiff(t, 'directory', entities, migrations), '')
})
