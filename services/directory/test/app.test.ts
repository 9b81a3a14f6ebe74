import t from 'tap'
import { ConfigError, injectInternal, loadConfig } from '@roster/service-kit'
import { DirectoryConfigSchema, readConfig } from '../src/config.js'
import { build } from './helper.js'

t.test('configuration is read once and fails loudly on a bad value', async (t) => {
  const defaults = loadConfig(DirectoryConfigSchema, {}, {})
  t.equal(defaults.PORT, 3002, 'the directory listens on 3002 by default')
  t.equal(defaults.INTERNAL_PORT, 3102, 'and on 3102 for internal routes')
  t.equal(loadConfig(DirectoryConfigSchema, {}, { INTERNAL_PORT: '4001' }).INTERNAL_PORT, 4001)
  t.throws(() => readConfig({ PORT: 4000, INTERNAL_PORT: 4000 }), ConfigError, 'the two listeners need two ports')
  t.equal(readConfig({ PORT: 0, INTERNAL_PORT: 0 }).INTERNAL_PORT, 0, 'both may be picked at random')
  t.equal(defaults.DB_SCHEMA, '', 'the schema defaults to the service name')
  t.equal(loadConfig(DirectoryConfigSchema, {}, { PORT: '4000' }).PORT, 4000, 'the environment is read and coerced')
  t.throws(() => readConfig({ PORT: 70000 }), ConfigError)
  t.throws(() => readConfig({ NATS_PREFIX: 'bad prefix!' }), ConfigError)
})

t.test('the service documents its routes and reports ready', async (t) => {
  const { app } = await build(t)
  const ready = await injectInternal(app, '/ready')
  t.equal(ready.statusCode, 200, ready.body)
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 404, 'readiness is internal')
  t.equal(
    (await app.inject({ method: 'GET', url: '/docs/json' })).statusCode,
    404,
    "the service's own docs are internal"
  )
  const docs = (await injectInternal(app, '/docs/json')).json()
  for (const path of ['/api/groups/', '/api/groups/{pk}/', '/api/occupations/', '/api/occupations/{pk}/'])
    t.ok(docs.paths[path], path)
  t.ok(docs.components.schemas.Group, 'Group schema')
  t.ok(docs.components.schemas.Occupation, 'Occupation schema')
  t.same(docs.paths['/api/groups/'].post.tags, ['groups'])
})

t.test('a token the identity service did not sign is refused', async (t) => {
  const { app } = await build(t)
  const forged = await app.inject({
    method: 'GET',
    url: '/api/groups/',
    headers: { authorization: 'Bearer not.a.token' }
  })
  t.equal(forged.statusCode, 401)
  t.same(forged.json(), { detail: 'Given token not valid for any token type', code: 'token_not_valid' })
})
