import t from 'tap'
import { REVOKED_SESSIONS_BUCKET } from '@roster/contracts'
import { REVOKED_SESSIONS_HEADER, transactional, type ServiceApp } from '@roster/service-kit'
import { build, ADMIN, login, bearer, register } from './helper.js'

const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString())

type App = Awaited<ReturnType<typeof build>>

/**
 * Holds the next login between its password check and its transaction (the window where bcrypt used
 * to run with the user's state read before it): `entered` resolves when a login is there, `release`
 * lets it go on. Only the first verify after `arm()` is held (a password change verifies too).
 */
function loginGate(app: App) {
  const passwords = app.identity.passwords
  const original = passwords.verify.bind(passwords)
  let armed: { entered: () => void; released: Promise<void> } | null = null
  passwords.verify = async (password, hash) => {
    const result = await original(password, hash)
    const gate = armed
    armed = null
    if (gate) {
      gate.entered()
      await gate.released
    }
    return result
  }
  return {
    arm() {
      let entered!: () => void
      let release!: () => void
      const enteredP = new Promise<void>((resolve) => (entered = resolve))
      const released = new Promise<void>((resolve) => (release = resolve))
      armed = { entered, released }
      return { entered: enteredP, release }
    }
  }
}

async function tokenStillWorks(app: ServiceApp, userId: number, tokens: { access: string; refresh: string }) {
  const access = await app.inject({ method: 'GET', url: `/api/users/${userId}/`, headers: bearer(tokens.access) })
  const refresh = await app.inject({ method: 'POST', url: '/api/auth/refresh/', payload: { refresh: tokens.refresh } })
  return {
    access: access.statusCode,
    refresh: refresh.statusCode,
    refreshed: refresh.statusCode === 200 ? refresh.json().access : null
  }
}

interface Ending {
  name: string
  /** Applies the change; answers its response status. */
  apply(app: App, user: { id: number; username: string; token: string }, adminToken: string): Promise<number>
  /** A token issued after the change may work only for these (demotion leaves an active, non-staff user). */
  laterLoginMayWork: boolean
  staff?: boolean
}

const endings: Ending[] = [
  {
    name: 'deactivation',
    laterLoginMayWork: false,
    apply: async (app, user, admin) =>
      (
        await app.inject({
          method: 'PATCH',
          url: `/api/users/${user.id}/`,
          headers: bearer(admin),
          payload: { is_active: false }
        })
      ).statusCode
  },
  {
    name: 'demotion',
    laterLoginMayWork: true,
    staff: true,
    apply: async (app, user, admin) =>
      (
        await app.inject({
          method: 'PATCH',
          url: `/api/users/${user.id}/`,
          headers: bearer(admin),
          payload: { is_staff: false }
        })
      ).statusCode
  },
  {
    name: 'password change by the user',
    laterLoginMayWork: false,
    apply: async (app, user) =>
      (
        await app.inject({
          method: 'PATCH',
          url: `/api/users/${user.id}/`,
          headers: bearer(user.token),
          payload: { password: 'password2', old_password: 'password1' }
        })
      ).statusCode
  },
  {
    name: 'password change by an admin',
    laterLoginMayWork: false,
    apply: async (app, user, admin) =>
      (
        await app.inject({
          method: 'PATCH',
          url: `/api/users/${user.id}/`,
          headers: bearer(admin),
          payload: { password: 'password2' }
        })
      ).statusCode
  },
  {
    name: 'deletion',
    laterLoginMayWork: false,
    apply: async (app, user, admin) =>
      (await app.inject({ method: 'DELETE', url: `/api/users/${user.id}/`, headers: bearer(admin) })).statusCode
  }
]

t.test('a login in flight during a change that ends sessions yields no token that outlives the change', async (t) => {
  // 50 rounds from one address refuse many logins: the per-address limit is not what this test is about.
  const app = await build(t, { LOGIN_IP_MAX_FAILURES: 10_000 })
  const gate = loginGate(app)
  const admin = await login(app, ADMIN.username, ADMIN.password)
  const ROUNDS = 10
  for (const ending of endings) {
    t.test(ending.name, async (t) => {
      const seen = { issued: 0, refused: 0 }
      for (let round = 0; round < ROUNDS; round++) {
        const user = await register(app)
        if (ending.staff) {
          const promote = await app.inject({
            method: 'PATCH',
            url: `/api/users/${user.id}/`,
            headers: bearer(admin.access),
            payload: { is_staff: true }
          })
          t.equal(promote.statusCode, 200)
        }
        const own = await login(app, user.username, 'password1')

        const held = gate.arm()
        const inFlight = app.inject({
          method: 'POST',
          url: '/api/auth/',
          payload: { username: user.username, password: 'password1' }
        })
        await held.entered
        // Interleavings: the login goes on after the change answered, right as it starts, or a little later.
        let status: number
        if (round % 3 === 0) {
          status = await ending.apply(app, { ...user, token: own.access }, admin.access)
          held.release()
        } else {
          const change = ending.apply(app, { ...user, token: own.access }, admin.access)
          if (round % 3 === 2) await new Promise((resolve) => setTimeout(resolve, round))
          held.release()
          status = await change
        }
        t.equal(status, 200, `round ${round}: the change answered 200`)
        const res = await inFlight
        t.ok([200, 401].includes(res.statusCode), `round ${round}: the login answered ${res.statusCode}`)
        if (res.statusCode !== 200) {
          seen.refused++
          continue
        }
        seen.issued++
        const tokens = res.json() as { access: string; refresh: string }
        const claims = claimsOf(tokens.access)
        const after = await tokenStillWorks(app, user.id, tokens)
        // After a demotion a token that says is_staff must be refused; a login that saw the demotion
        // holds a working non-staff session (and a refresh of it says is_staff false too).
        if (ending.laterLoginMayWork && claims.is_staff === false) {
          t.equal(after.access, 200, `round ${round}: a login after the demotion works, as a non-staff user`)
          t.equal(after.refreshed && claimsOf(after.refreshed).is_staff, false)
          continue
        }
        t.equal(after.access, 401, `round ${round}: the access token is refused`)
        t.equal(after.refresh, 401, `round ${round}: the refresh token is refused`)
      }
      t.equal(seen.issued + seen.refused, ROUNDS)
      t.comment(`${ending.name}: ${seen.issued} logins got tokens, ${seen.refused} were refused`)
    })
  }
})

t.test('the ending is visible before the answer: header for the gateway, revocation bucket written', async (t) => {
  const app = await build(t)
  const user = await register(app)
  const tokens = await login(app, user.username, 'password1')
  // The bucket read as the stream under it (KV_<bucket>, one subject per key).
  const bucket = app.nats.names.bucket(REVOKED_SESSIONS_BUCKET)
  const kv = {
    get: (key: string) =>
      app.nats.jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${key}` }).then(
        (message) => message !== null,
        () => false
      )
  }
  const sid = claimsOf(tokens.access).sid

  const out = await app.inject({ method: 'GET', url: '/api/auth/logout/', headers: bearer(tokens.access) })
  t.equal(out.statusCode, 200)
  t.equal(out.headers[REVOKED_SESSIONS_HEADER], `${sid},${claimsOf(tokens.refresh).exp}`)
  t.ok(await kv.get(sid), 'the bucket has the session when the logout answers')
  t.equal(
    (await app.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(tokens.access) })).statusCode,
    401
  )

  // Deactivation names every session of the user; a change that ends none sends no header.
  const admin = await login(app, ADMIN.username, ADMIN.password)
  const a = await login(app, user.username, 'password1')
  const b = await login(app, user.username, 'password1')
  const email = await app.inject({
    method: 'PATCH',
    url: `/api/users/${user.id}/`,
    headers: bearer(admin.access),
    payload: { email: 'x@example.com' }
  })
  t.equal(email.statusCode, 200)
  t.notOk(email.headers[REVOKED_SESSIONS_HEADER])
  const off = await app.inject({
    method: 'PATCH',
    url: `/api/users/${user.id}/`,
    headers: bearer(admin.access),
    payload: { is_active: false }
  })
  t.equal(off.statusCode, 200)
  const named = String(off.headers[REVOKED_SESSIONS_HEADER])
    .split(';')
    .map((entry) => entry.split(',')[0])
  t.same(new Set(named), new Set([claimsOf(a.access).sid, claimsOf(b.access).sid]))
  for (const s of named) t.ok(await kv.get(s), 'in the bucket before the answer')
})

t.test('a revocation is announced once its transaction commits, never when it rolls back', async (t) => {
  const app = await build(t)
  const user = await register(app)
  const tokens = await login(app, user.username, 'password1')
  const sid = claimsOf(tokens.access).sid
  const read = () => app.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(tokens.access) })

  const rolledBack = transactional(app.orm.em.fork(), async (em) => {
    await app.identity.sessions.revoke(em, { userId: user.id }, null)
    throw new Error('rolled back after the revocation')
  })
  await t.rejects(rolledBack, { message: 'rolled back after the revocation' })
  t.notOk(app.revocations.isRevoked(sid), 'a rolled-back revocation is not remembered')
  t.equal((await read()).statusCode, 200, 'the session still works')

  await transactional(app.orm.em.fork(), (em) => app.identity.sessions.revoke(em, { userId: user.id }, null))
  t.ok(app.revocations.isRevoked(sid), 'remembered once committed, before the caller goes on')
  t.equal((await read()).statusCode, 401)
})

t.test('30 parallel failed logins from one address: at most the per-address limit reach bcrypt', async (t) => {
  const app = await build(t) // LOGIN_IP_MAX_FAILURES: 20
  const before = app.identity.passwords.counts.compares
  const attempts = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      app.inject({
        method: 'POST',
        url: '/api/auth/',
        payload: { username: `ghost-${i}`, password: 'wrong-password' },
        remoteAddress: '10.9.8.7'
      })
    )
  )
  const codes = attempts.map((r) => r.statusCode)
  t.equal(app.identity.passwords.counts.compares - before, 20, 'twenty compares')
  t.equal(codes.filter((c) => c === 401).length, 20)
  t.equal(codes.filter((c) => c === 429).length, 10)
  const refused = attempts.find((r) => r.statusCode === 429)!
  t.ok(Number(refused.headers['retry-after']) > 1)
  t.ok(refused.json().detail)
  t.same(
    await new (await import('../src/repositories/throttle.js')).LoginThrottle().state(app.orm.em.fork(), 'ip:10.9.8.7'),
    { failures: 20, pending: 0 }
  )
})

t.test('parallel right logins from one address all pass, waiting for the checks in flight', async (t) => {
  const app = await build(t, { LOGIN_IP_MAX_FAILURES: 3, LOGIN_MAX_FAILURES: 2 })
  const user = await register(app)
  const attempts = await Promise.all(
    Array.from({ length: 12 }, () =>
      app.inject({ method: 'POST', url: '/api/auth/', payload: { username: user.username, password: 'password1' } })
    )
  )
  t.same(
    attempts.map((r) => r.statusCode),
    attempts.map(() => 200)
  )
})

t.test(
  'password work is bounded: beyond the slots, calls wait a bounded time, then 429 with Retry-After',
  async (t) => {
    const app = await build(t, { PASSWORD_WORKERS: 1, PASSWORD_QUEUE_WAIT_MS: 0 })
    const passwords = app.identity.passwords
    t.equal(passwords.limits.concurrency, 1)
    const user = await register(app)

    let release!: () => void
    const holding = passwords.withSlot(() => new Promise<void>((resolve) => (release = resolve)))
    t.same(passwords.load, { running: 1, waiting: 0 })
    const busy = await app.inject({
      method: 'POST',
      url: '/api/auth/',
      payload: { username: user.username, password: 'password1' },
      headers: { 'accept-language': 'en' }
    })
    t.equal(busy.statusCode, 429)
    t.match(busy.json(), { detail: /^Request was throttled\. Expected available in \d+ seconds\.$/ })
    t.ok(Number(busy.headers['retry-after']) >= 1)
    const registration = await app.inject({
      method: 'POST',
      url: '/api/users/',
      payload: { username: 'while-busy', password: 'password1' }
    })
    t.equal(registration.statusCode, 429, 'registration goes through the same bound')
    const token = await new Promise<string>((resolve) => {
      release()
      void holding.then(async () => resolve((await login(app, user.username, 'password1')).access))
    })
    const change = await app.inject({
      method: 'PATCH',
      url: `/api/users/${user.id}/`,
      headers: bearer(token),
      payload: {}
    })
    t.equal(change.statusCode, 200)
    const { LoginThrottle } = await import('../src/repositories/throttle.js')
    t.same(
      await new LoginThrottle().state(app.orm.em.fork(), 'ip:127.0.0.1'),
      { failures: 0, pending: 0 },
      'the refused attempt counted for nothing'
    )
  }
)

t.test(
  'the queue: never more running than the slots, waiting ones in order, a full queue refused at once',
  async (t) => {
    const { Passwords } = await import('../src/domain/passwords.js')
    const passwords = new Passwords(4, { concurrency: 2, maxWaitMs: 60_000, maxQueue: 3 })
    const releases: Array<() => void> = []
    const order: number[] = []
    let peak = 0
    const jobs = Array.from({ length: 7 }, (_, i) =>
      passwords.withSlot(async () => {
        peak = Math.max(peak, passwords.load.running)
        order.push(i)
        await new Promise<void>((resolve) => releases.push(resolve))
      })
    )
    const outcomes = Promise.allSettled(jobs)
    t.same(passwords.load, { running: 2, waiting: 3 })
    while (order.length < 5) {
      await new Promise((resolve) => setImmediate(resolve))
      releases.shift()?.()
    }
    releases.forEach((release) => release())
    while (releases.length > 0 || order.length < 5) {
      await new Promise((resolve) => setImmediate(resolve))
      releases.splice(0).forEach((release) => release())
    }
    const settled = await outcomes
    t.same(order, [0, 1, 2, 3, 4])
    t.equal(peak, 2)
    t.same(
      settled.map((s) => s.status),
      ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected']
    )
    t.equal((settled[5] as PromiseRejectedResult).reason.statusCode, 429)
    t.same(passwords.load, { running: 0, waiting: 0 })
  }
)

t.test('a reused rotated refresh token ends its session, named to the gateway like any ending', async (t) => {
  const app = await build(t, { ROSTER_ROTATE_REFRESH: true })
  const user = await register(app)
  const tokens = await login(app, user.username, 'password1')
  const first = await app.inject({ method: 'POST', url: '/api/auth/refresh/', payload: { refresh: tokens.refresh } })
  t.equal(first.statusCode, 200)
  t.notOk(first.headers[REVOKED_SESSIONS_HEADER])
  const reuse = await app.inject({ method: 'POST', url: '/api/auth/refresh/', payload: { refresh: tokens.refresh } })
  t.equal(reuse.statusCode, 401)
  t.match(reuse.json(), { code: 'token_not_valid' })
  t.equal(String(reuse.headers[REVOKED_SESSIONS_HEADER]).split(',')[0], claimsOf(tokens.access).sid)
})

t.test('an inactive account refreshes nothing, even with a session the deactivation did not reach', async (t) => {
  const app = await build(t)
  const user = await register(app)
  const tokens = await login(app, user.username, 'password1')
  // Deactivated behind the service's back (no revocation): refresh still reads the account.
  await app.orm.em.fork().getConnection().execute('update app_user set is_active = false where id = ?', [user.id])
  const res = await app.inject({ method: 'POST', url: '/api/auth/refresh/', payload: { refresh: tokens.refresh } })
  t.equal(res.statusCode, 401)
})

t.test('logins checking passwords hold no database connection: reads go on with every connection free', async (t) => {
  const app = await build(t, { DB_POOL_MAX: 2 })
  const user = await register(app)
  const own = await login(app, user.username, 'password1')
  const passwords = app.identity.passwords
  const original = passwords.verify.bind(passwords)
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let inCheck = 0
  let allIn!: () => void
  const allInP = new Promise<void>((resolve) => (allIn = resolve))
  // Every login stays in its password check until released: more of them than the pool has connections.
  passwords.verify = async (password, hash) => {
    const result = await original(password, hash)
    if (++inCheck === 4) allIn()
    await released
    return result
  }
  const logins = Array.from({ length: 4 }, (_, i) =>
    app.inject({
      method: 'POST',
      url: '/api/auth/',
      payload: { username: user.username, password: 'password1' },
      remoteAddress: `10.0.0.${i + 1}`
    })
  )
  await allInP
  const read = await app.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(own.access) })
  t.equal(read.statusCode, 200, 'answered while four logins are in their password check')
  release()
  t.same(
    (await Promise.all(logins)).map((r) => r.statusCode),
    [200, 200, 200, 200]
  )
})
