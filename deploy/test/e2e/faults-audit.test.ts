import t from 'tap'
import { eventually } from '@roster/service-kit/testing'
import { startE2E, client, ADMIN, pool, logCount } from './helper.js'

// Each fault scenario is a file of its own with its own budget (tap's default 120 s per file is too
// tight for a machine twice as slow as this one: the three together once ran past it).
t.setTimeout(300_000)

t.test('audit down: logins and logouts made meanwhile appear once it is back, each exactly once', async (t) => {
  const system = await startE2E(t, ['identity', 'audit', 'gateway'])
  const api = client(system.gatewayUrl!)
  const admin = (await api('POST', '/api/auth/', { body: ADMIN })).json.access
  const user = (await api('POST', '/api/users/', { body: { username: 'auditdown', password: 'password1' } })).json

  await system.stopService('audit', { signal: 'SIGKILL' })
  const started = Date.now()
  const statuses = await pool(250, 8, async () => {
    const login = await api('POST', '/api/auth/', { body: { username: 'auditdown', password: 'password1' } })
    const logout = await api('POST', '/api/auth/logout/', { token: login.json?.access })
    return [login.status, logout.status]
  })
  t.same(new Set(statuses.flat()), new Set([200]), '250 logins and 250 logouts succeed while audit is down')
  t.comment(`500 operations in ${Date.now() - started} ms with audit down`)

  const restarted = Date.now()
  await system.startService('audit')
  await eventually(async () => (await logCount(api, admin, user.id)) >= 500, { timeoutMs: 60_000, intervalMs: 100 })
  t.comment(`backlog of 500 ingested ${Date.now() - restarted} ms after audit was started again`)
  // A later marker (one more login) on the same stream: once its row is in, a second copy of the backlog
  // that was going to arrive has had its turn; then the count must be exact.
  t.equal((await api('POST', '/api/auth/', { body: { username: 'auditdown', password: 'password1' } })).status, 200)
  await eventually(async () => (await logCount(api, admin, user.id, 0)) >= 251, { timeoutMs: 60_000, intervalMs: 100 })
  t.equal(await logCount(api, admin, user.id), 501, 'exactly 500 rows and the marker, none twice')
  t.equal(await logCount(api, admin, user.id, 0), 251, '250 logins and the marker')
  t.equal(await logCount(api, admin, user.id, 1), 250)
})
