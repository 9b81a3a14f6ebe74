import t from 'tap'
import { eventually } from '@roster/service-kit/testing'
import { startE2E, client } from './helper.js'

// `pnpm start` supervises its children. Here the real services, started the same way: identity is killed
// (SIGKILL, as a crash or the OOM killer would), the launcher says so and starts it again, and the gateway
// serves identity's routes again.

t.setTimeout(180_000)

t.test('a killed service is restarted by the launcher and serves again through the gateway', async (t) => {
  const messages: string[] = []
  const system = await startE2E(
    t,
    ['identity', 'gateway'],
    {},
    {
      restart: { initialDelayMs: 200, maxDelayMs: 2_000 },
      log: (message) => messages.push(message)
    }
  )
  const api = client(system.gatewayUrl!)
  const user = await api('POST', '/api/users/', { body: { username: 'supervised', password: 'password-1' } })
  t.equal(user.status, 200)
  const token = (await api('POST', '/api/auth/', { body: { username: 'supervised', password: 'password-1' } })).json
    .access

  const pid = system.pid('identity')!
  process.kill(pid, 'SIGKILL')
  await eventually(async () => messages.some((m) => m.startsWith('identity is serving again')), {
    timeoutMs: 90_000,
    intervalMs: 100
  })
  t.match(
    messages.join('\n'),
    new RegExp(`identity \\(pid ${pid}\\) exited unexpectedly \\(signal SIGKILL\\); restarting in 200 ms`)
  )
  t.not(system.pid('identity'), pid, 'a new identity process')
  const again = await eventually(
    async () => {
      const res = await api('GET', `/api/users/${user.json.id}/`, { token })
      return res.status === 200 ? res : undefined
    },
    { timeoutMs: 30_000, intervalMs: 200 }
  )
  t.equal(again.json.username, 'supervised', 'identity serves through the gateway again, with its data')
  t.ok(system.isRunning('gateway'), 'the gateway was left alone')
})
