import t from 'tap'
import { isolate, eventually } from '@roster/service-kit/testing'
import { buildApp } from '../src/app.js'
import { testConfig, login, bearer, register, publishEvent } from './helper.js'

t.test('two replicas behave as one', async (t) => {
  const iso = await isolate(t)
  const config = testConfig(iso)
  const [a, b] = await Promise.all([buildApp(config), buildApp(config)])
  t.after(() => Promise.all([a.close(), b.close()]))
  await Promise.all([a.ready(), b.ready()])

  // Only that it happens: how fast facts cross between processes is `pnpm bench`'s (its `events` scenario).
  t.test('a logout on one is refused by the other', async (t) => {
    const user = await register(a)
    const tokens = await login(a, user.username, 'password1')
    t.equal(
      (await b.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(tokens.access) })).statusCode,
      200
    )
    const started = Date.now()
    await a.inject({ method: 'GET', url: '/api/auth/logout/', headers: bearer(tokens.access) })
    const read = () => b.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(tokens.access) })
    await eventually(async () => (await read()).statusCode === 401, { timeoutMs: 30_000, intervalMs: 5 })
    t.comment(`refused by the other replica after ${Date.now() - started} ms`)
  })

  t.test('the lockout is shared', async (t) => {
    const user = await register(a)
    const attempts = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        (i % 2 ? a : b).inject({
          method: 'POST',
          url: '/api/auth/',
          payload: { username: user.username, password: 'wrong-password' }
        })
      )
    )
    t.equal(attempts.filter((r) => r.statusCode === 401).length, 5)
    t.equal(attempts.filter((r) => r.statusCode === 429).length, 7)
  })

  t.test('the durable consumer is shared: each event is applied once', async (t) => {
    for (let i = 1; i <= 20; i++)
      await publishEvent(a, 'directory.occupation.created', { occupation_id: 100 + i, version: 1, name: `o${i}` })
    const count = async () =>
      Number(
        (
          await a.orm.em
            .fork()
            .getConnection()
            .execute(`select count(*) as n from processed_event where consumer = 'identity-directory'`)
        )[0].n
      )
    await eventually(async () => (await count()) === 20)
    // A later marker on the same stream: the consumer takes events in stream order, so once the marker is
    // applied every copy of the twenty that was going to be delivered has been.
    const marker = await publishEvent(a, 'directory.occupation.created', {
      occupation_id: 200,
      version: 1,
      name: 'marker'
    })
    const applied = async (id: string) =>
      (await a.orm.em.fork().getConnection().execute(`select 1 from processed_event where event_id = ?`, [id]))
        .length === 1
    const stats = () => [a.consumers.stats()['identity-directory'], b.consumers.stats()['identity-directory']]
    const handled = () => stats()[0].handled + stats()[1].handled
    // The counters move just after the commit that the row shows.
    await eventually(async () => (await applied(marker)) && handled() >= 21, { timeoutMs: 30_000 })
    t.equal(await count(), 21, 'the twenty and the marker')
    const [first, second] = stats()
    t.equal(handled(), 21, `each applied once, split ${first.handled} / ${second.handled}`)
  })
})
