import t from 'tap'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eventually } from '@roster/service-kit/testing'
import { startEmbeddedPostgres, startNatsServer } from '../../local/infra.js'
import { startE2E, client, ADMIN } from './helper.js'

type Api = ReturnType<typeof client>

async function pool<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count)
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++
        results[i] = await fn(i)
      }
    })
  )
  return results
}

async function logCount(api: Api, adminToken: string, userId: number, operation?: number): Promise<number> {
  const query = operation === undefined ? '' : `?operation=${operation}`
  const res = await api('GET', `/api/users/${userId}/user-logs/${query}`, { token: adminToken })
  if (res.status !== 200) throw new Error(`${res.status} ${res.text}`)
  return Number(res.headers.get('x-total-count'))
}

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
  await new Promise((r) => setTimeout(r, 1500))
  t.equal(await logCount(api, admin, user.id), 500, 'exactly 500 rows, none twice')
  t.equal(await logCount(api, admin, user.id, 0), 250)
  t.equal(await logCount(api, admin, user.id, 1), 250)
})

t.test('NATS down: logins never fail, and every one reaches the log once NATS is back', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'roster-nats-'))
  t.after(() => rm(dataDir, { recursive: true, force: true }))
  let nats = await startNatsServer({ dataDir, port: 0 })
  t.after(() => nats.stop())
  const system = await startE2E(t, ['identity', 'audit', 'gateway'], { NATS_URL: nats.url })
  const api = client(system.gatewayUrl!)
  const admin = (await api('POST', '/api/auth/', { body: ADMIN })).json.access
  const user = (await api('POST', '/api/users/', { body: { username: 'natsdown', password: 'password1' } })).json
  await eventually(async () => (await logCount(api, admin, user.id)) === 0)

  await nats.stop()
  const statuses = await pool(200, 8, async () => (await api('POST', '/api/auth/', { body: { username: 'natsdown', password: 'password1' } })).status)
  t.same(new Set(statuses), new Set([200]), '200 logins succeed while NATS is down')

  const restarted = Date.now()
  nats = await startNatsServer({ dataDir, port: Number(new URL(nats.url).port) })
  await eventually(async () => (await logCount(api, admin, user.id, 0)) >= 200, { timeoutMs: 60_000, intervalMs: 200 })
  t.comment(`all 200 logins in the log ${Date.now() - restarted} ms after NATS came back`)
  await new Promise((r) => setTimeout(r, 1500))
  t.equal(await logCount(api, admin, user.id, 0), 200, 'exactly 200 rows')
})

t.test('PostgreSQL down: clear 503s, never a 500, and everything stored is there once it is back', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'roster-pg-'))
  await chmod(dataDir, 0o711) // PostgreSQL runs as its own user when the tests run as root
  t.after(() => rm(dataDir, { recursive: true, force: true }))
  let postgres = await startEmbeddedPostgres({ dataDir: join(dataDir, 'pg'), port: 0 })
  t.after(() => postgres.stop())
  const system = await startE2E(t, ['identity', 'gateway'], { DATABASE_URL: postgres.url })
  const api = client(system.gatewayUrl!)
  const user = (await api('POST', '/api/users/', { body: { username: 'pgdown', password: 'password1' } })).json
  const token = (await api('POST', '/api/auth/', { body: { username: 'pgdown', password: 'password1' } })).json.access

  await postgres.stop()
  const during = [
    await api('POST', '/api/auth/', { body: { username: 'pgdown', password: 'password1' } }),
    await api('GET', `/api/users/${user.id}/`, { token }),
    await api('POST', '/api/users/', { body: { username: 'pgdown2', password: 'password1' } })
  ]
  t.same(
    during.map((r) => r.status),
    [503, 503, 503],
    'requests answer 503 while the database is away'
  )
  t.ok(during.every((r) => typeof r.json?.detail === 'string'), 'in the API shape')
  t.equal((await fetch(`${system.internalUrls.identity}/ready`)).status, 503, 'identity says it is not ready')

  postgres = await startEmbeddedPostgres({ dataDir: join(dataDir, 'pg'), port: postgres.port })
  await eventually(async () => (await api('GET', `/api/users/${user.id}/`, { token })).status === 200, { timeoutMs: 30_000, intervalMs: 200 })
  const again = await api('POST', '/api/auth/', { body: { username: 'pgdown', password: 'password1' } })
  t.equal(again.status, 200, 'logins work again')
  t.equal((await api('GET', `/api/users/${user.id}/`, { token })).json.username, 'pgdown', 'nothing stored was lost')
})
