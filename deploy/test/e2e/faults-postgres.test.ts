import t from 'tap'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eventually } from '@roster/service-kit/testing'
import { startEmbeddedPostgres } from '../../local/infra.js'
import { startE2E, client } from './helper.js'
import { stopWhenTestDies } from '../reaper.js'

// Each fault scenario is a file of its own with its own budget (tap's default 120 s per file is too
// tight for a machine twice as slow as this one: the three together once ran past it).
t.setTimeout(300_000)

t.test('PostgreSQL down: clear 503s, never a 500, and everything stored is there once it is back', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'roster-pg-'))
  await chmod(dataDir, 0o711) // PostgreSQL runs as its own user when the tests run as root
  t.after(() => rm(dataDir, { recursive: true, force: true }))
  let postgres = await startEmbeddedPostgres({ dataDir: join(dataDir, 'pg'), port: 0 })
  // SIGINT: PostgreSQL's fast shutdown.
  stopWhenTestDies(postgres.pid, dataDir, 'SIGINT')
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
  t.ok(
    during.every((r) => typeof r.json?.detail === 'string'),
    'in the API shape'
  )
  t.equal((await fetch(`${system.internalUrls.identity}/ready`)).status, 503, 'identity says it is not ready')

  postgres = await startEmbeddedPostgres({ dataDir: join(dataDir, 'pg'), port: postgres.port })
  stopWhenTestDies(postgres.pid, dataDir, 'SIGINT')
  await eventually(async () => (await api('GET', `/api/users/${user.id}/`, { token })).status === 200, {
    timeoutMs: 30_000,
    intervalMs: 200
  })
  const again = await api('POST', '/api/auth/', { body: { username: 'pgdown', password: 'password1' } })
  t.equal(again.status, 200, 'logins work again')
  t.equal((await api('GET', `/api/users/${user.id}/`, { token })).json.username, 'pgdown', 'nothing stored was lost')
})
