import t from 'tap'
import { eventually } from '@roster/service-kit/testing'
import { ADMIN, client, startReplicas } from './helper.js'

// It starts the services as processes: a budget of its own that fits a machine twice as slow as a loaded
// one of this kind (tap's default of 120 s per file does not).
t.setTimeout(300_000)

// Two replicas of every service and of the gateway, on one database and one NATS, started together:
// a client going through either gateway sees one system.
t.test('two replicas of everything behave as one system', async (t) => {
  const [a, b] = (await startReplicas(t, ['identity', 'directory', 'audit', 'gateway'], 2)).map((s) =>
    client(s.gatewayUrl!)
  )
  const admin = (await a('POST', '/api/auth/', { body: ADMIN })).json.access as string
  const other = (i: number) => (i % 2 ? a : b)

  t.test('started together, they migrate once and fill the occupation catalogue once', async (t) => {
    const list = await b('GET', '/api/occupations/?limit=1000', { token: admin })
    t.equal(list.status, 200)
    t.equal(list.headers.get('x-total-count'), '40')
  })

  t.test('a logout through one replica is refused by the other', async (t) => {
    const user = (await a('POST', '/api/users/', { body: { username: 'roamer', password: 'password1' } })).json
    const { access, refresh } = (await a('POST', '/api/auth/', { body: { username: 'roamer', password: 'password1' } }))
      .json
    t.equal((await b('GET', `/api/users/${user.id}/`, { token: access })).status, 200)
    t.equal((await b('POST', '/api/auth/logout/', { token: access })).status, 200)
    const started = Date.now()
    await eventually(async () => (await a('GET', `/api/users/${user.id}/`, { token: access })).status === 401, {
      timeoutMs: 30_000,
      intervalMs: 5
    })
    t.comment(`refused by the other replica ${Date.now() - started} ms after the logout answered`)
    t.equal((await a('POST', '/api/auth/refresh/', { body: { refresh } })).status, 401, 'its refresh token too')
  })

  t.test('the lockout counts attempts through both replicas together', async (t) => {
    await a('POST', '/api/users/', { body: { username: 'guessed', password: 'password1' } })
    const attempts = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        other(i)('POST', '/api/auth/', { body: { username: 'guessed', password: 'wrong-password' } })
      )
    )
    t.equal(attempts.filter((r) => r.status === 401).length, 5, 'five checked')
    t.equal(attempts.filter((r) => r.status === 429).length, 7, 'the rest refused, whichever replica they reached')
  })

  t.test('two audit replicas share one durable consumer: every login logged once', async (t) => {
    const user = (await b('POST', '/api/users/', { body: { username: 'regular', password: 'password1' } })).json
    for (let i = 0; i < 20; i++) {
      const login = await other(i)('POST', '/api/auth/', { body: { username: 'regular', password: 'password1' } })
      t.equal(login.status, 200)
    }
    const count = async (api: typeof a) =>
      Number((await api('GET', `/api/users/${user.id}/user-logs/`, { token: admin })).headers.get('x-total-count'))
    await eventually(async () => (await count(a)) >= 20, { timeoutMs: 60_000 })
    // A later marker (one more login): once its row is in, a second copy of the twenty has had its turn.
    t.equal((await a('POST', '/api/auth/', { body: { username: 'regular', password: 'password1' } })).status, 200)
    await eventually(async () => (await count(a)) >= 21, { timeoutMs: 60_000 })
    t.equal(await count(a), 21, 'twenty rows and the marker, none twice')
    t.equal(await count(b), 21, 'the same through the other replica')
  })

  t.test('facts cross replicas: an occupation made on one is usable and cascades on the other', async (t) => {
    const occupation = (await b('POST', '/api/occupations/', { token: admin, body: { name: '跨副本职业' } })).json
    const holder = await a('POST', '/api/users/', {
      body: {
        username: 'holder',
        password: 'password1',
        profile: { name: '王芳', gender: 0, age: 30, identify_id: '100000190001010001', occupation: occupation.id }
      }
    })
    t.equal(holder.status, 200, holder.text)
    const group = (await a('POST', '/api/groups/', { token: admin, body: { name: '跨副本组' } })).json
    t.equal(
      (await b('POST', `/api/groups/${group.id}/users/`, { token: admin, body: { users: [holder.json.id] } })).status,
      200
    )
    const groups = await a('GET', `/api/users/${holder.json.id}/groups/`, { token: admin })
    t.same(
      groups.json.map((g: { id: number }) => g.id),
      [group.id]
    )

    t.equal((await a('DELETE', `/api/occupations/${occupation.id}/`, { token: admin })).status, 200)
    const started = Date.now()
    await eventually(
      async () => (await b('GET', `/api/users/${holder.json.id}/`, { token: admin })).json.profile.occupation === null,
      { timeoutMs: 30_000, intervalMs: 10 }
    )
    t.comment(`the holder's occupation is null on the other replica after ${Date.now() - started} ms`)
  })
})
