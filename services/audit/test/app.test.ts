import t from 'tap'
import { isolate } from '@roster/service-kit/testing'
import { injectInternal } from '@roster/service-kit'
import { buildApp } from '../src/app.js'
import { readConfig } from '../src/config.js'
import { buildSystem, get, testConfig } from './helper.js'

t.test('configuration', async (t) => {
  t.equal(readConfig({}).PORT, 3003, 'audit listens on 3003 by default')
  t.equal(readConfig({}).INTERNAL_PORT, 3103, 'and on 3103 for internal routes')
  t.throws(
    () => readConfig({ PORT: 4000, INTERNAL_PORT: 4000 }),
    { name: 'ConfigError' },
    'the two listeners need two ports'
  )
  t.throws(() => readConfig({ PORT: 'abc' as any }), { name: 'ConfigError' })
  t.throws(() => readConfig({ IDENTITY_READ_THROUGH_TIMEOUT_MS: 5 }), { name: 'ConfigError' })
  const iso = await isolate(t)
  await t.rejects(
    buildApp(testConfig(iso, { ROSTER_TIME_ZONE: 'Mars/Olympus_Mons' })),
    RangeError,
    'a bad time zone stops start-up'
  )
})

t.test('operations and documentation', async (t) => {
  const { audit } = await buildSystem(t)
  t.equal((await get(audit, '/health')).statusCode, 200)
  t.equal((await injectInternal(audit, '/health')).statusCode, 200, 'liveness on both listeners')
  for (const path of ['/ready', '/metrics', '/docs/json', '/docs/']) {
    const res = await get(audit, path)
    t.equal(res.statusCode, 404, `${path} is internal`)
    t.same(res.json(), { detail: '未找到。' })
  }
  const ready = await injectInternal(audit, '/ready')
  t.equal(ready.statusCode, 200, ready.body)
  t.match(ready.json().checks, { database: 'ok', nats: 'ok' })
  t.equal((await injectInternal(audit, '/metrics')).statusCode, 200)
  const res = await get(audit, '/api/user-logs/', undefined, { 'x-request-id': 'req-audit-1' })
  t.equal(res.headers['x-request-id'], 'req-audit-1')

  const doc = (await injectInternal(audit, '/docs/json')).json()
  t.same(Object.keys(doc.paths).sort(), [
    '/api/black-list/',
    '/api/black-list/{pk}/',
    '/api/user-logs/',
    '/api/user-logs/{pk}/',
    '/api/users/{pk}/user-logs/'
  ])
  t.ok(doc.components.schemas.UserLog, 'UserLog is a named schema')
  t.ok(doc.components.schemas.BlackListEntry, 'BlackListEntry is a named schema')
  for (const [path, methods] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(methods)) {
      t.ok(op.tags?.length && op.summary, `${method} ${path} has tags and a summary`)
      t.ok(op.responses['200'] && op.responses['401'], `${method} ${path} documents 200 and 401`)
    }
  }
})
