import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eventually } from '@roster/service-kit/testing'
import { startNatsServer } from '../../local/infra.js'
import { startE2E, client, ADMIN, pool, logCount } from './helper.js'
import { stopWhenTestDies } from '../reaper.js'

// Each fault scenario is a file of its own with its own budget (tap's default 120 s per file is too
// tight for a machine twice as slow as this one: the three together once ran past it).
t.setTimeout(300_000)

t.test('NATS down: logins never fail, and every one reaches the log once NATS is back', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'roster-nats-'))
  t.after(() => rm(dataDir, { recursive: true, force: true }))
  let nats = await startNatsServer({ dataDir, port: 0 })
  stopWhenTestDies(nats.pid, dataDir)
  t.after(() => nats.stop())
  const system = await startE2E(t, ['identity', 'audit', 'gateway'], { NATS_URL: nats.url })
  const api = client(system.gatewayUrl!)
  const admin = (await api('POST', '/api/auth/', { body: ADMIN })).json.access
  const user = (await api('POST', '/api/users/', { body: { username: 'natsdown', password: 'password1' } })).json
  await eventually(async () => (await logCount(api, admin, user.id)) === 0)

  await nats.stop()
  const statuses = await pool(
    200,
    8,
    async () => (await api('POST', '/api/auth/', { body: { username: 'natsdown', password: 'password1' } })).status
  )
  t.same(new Set(statuses), new Set([200]), '200 logins succeed while NATS is down')

  const restarted = Date.now()
  nats = await startNatsServer({ dataDir, port: Number(new URL(nats.url).port) })
  stopWhenTestDies(nats.pid, dataDir)
  await eventually(async () => (await logCount(api, admin, user.id, 0)) >= 200, { timeoutMs: 60_000, intervalMs: 200 })
  t.comment(`all 200 logins in the log ${Date.now() - restarted} ms after NATS came back`)
  // A later marker (one more login): once its row is in, the count of the 200 before it must be exact.
  t.equal((await api('POST', '/api/auth/', { body: { username: 'natsdown', password: 'password1' } })).status, 200)
  await eventually(async () => (await logCount(api, admin, user.id, 0)) >= 201, { timeoutMs: 60_000, intervalMs: 200 })
  t.equal(await logCount(api, admin, user.id, 0), 201, 'exactly 200 rows and the marker, none twice')
})
