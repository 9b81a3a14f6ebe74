import t from 'tap'
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto'
import { signToken } from '@roster/service-kit/testing'
import { build, ADMIN, login, bearer, register } from '../helper.js'

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString())

t.test('login', async (t) => {
  const app = await build(t)
  const user = await register(app)

  t.test('answers a token pair with simplejwt claims', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/',
      payload: { username: user.username, password: 'password1' }
    })
    t.equal(res.statusCode, 200)
    const { access, refresh } = res.json()
    const header = JSON.parse(Buffer.from(access.split('.')[0], 'base64url').toString())
    t.equal(header.alg, 'EdDSA')
    t.ok(header.kid)
    const a = claimsOf(access)
    t.match(a, { token_type: 'access', user_id: user.id, sid: String, jti: String, exp: Number, iat: Number })
    t.equal(a.exp - a.iat, 3600)
    const r = claimsOf(refresh)
    t.equal(r.token_type, 'refresh')
    t.equal(r.exp - r.iat, 7 * 24 * 3600)
    t.equal(r.sid, a.sid)
  })

  t.test('usernames are matched case-insensitively', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/',
      payload: { username: user.username.toUpperCase(), password: 'password1' }
    })
    t.equal(res.statusCode, 200)
  })

  t.test('missing, blank and wrong credentials', async (t) => {
    const missing = await app.inject({ method: 'POST', url: '/api/auth/', payload: {} })
    t.equal(missing.statusCode, 400)
    t.same(missing.json(), { username: ['该字段是必填项。'], password: ['该字段是必填项。'] })
    const blank = await app.inject({ method: 'POST', url: '/api/auth/', payload: { username: '', password: '' } })
    t.same(blank.json(), { username: ['该字段不能为空。'], password: ['该字段不能为空。'] })
    for (const payload of [
      { username: user.username, password: 'wrong-password' },
      { username: 'nobody-at-all', password: 'password1' }
    ]) {
      const res = await app.inject({ method: 'POST', url: '/api/auth/', payload, headers: { 'accept-language': 'en' } })
      t.equal(res.statusCode, 401)
      t.same(res.json(), { detail: 'No active account found with the given credentials' })
    }
  })
})

t.test('lockout: parallel wrong attempts cannot slip past the limit', async (t) => {
  const app = await build(t, { LOGIN_IP_MAX_FAILURES: 1000 })
  const user = await register(app)
  const bcryptCalls: number[] = []
  const verify = app.identity.passwords.verify.bind(app.identity.passwords)
  app.identity.passwords.verify = async (password, hash) => {
    bcryptCalls.push(1)
    return verify(password, hash)
  }
  const attempts = await Promise.all(
    Array.from({ length: 30 }, () =>
      app.inject({
        method: 'POST',
        url: '/api/auth/',
        payload: { username: user.username, password: 'wrong-password' }
      })
    )
  )
  const codes = attempts.map((r) => r.statusCode)
  t.equal(codes.filter((c) => c === 401).length, 5)
  t.equal(codes.filter((c) => c === 429).length, 25)
  t.equal(bcryptCalls.length, 5, 'only five attempts reached bcrypt')
  const locked = attempts.find((r) => r.statusCode === 429)!
  t.ok(Number(locked.headers['retry-after']) > 800)
  t.match(locked.json(), { detail: /请求超过了限速/ })
  const right = await app.inject({
    method: 'POST',
    url: '/api/auth/',
    payload: { username: user.username, password: 'password1' }
  })
  t.equal(right.statusCode, 429, 'even the right password waits for the window')
  const other = await register(app)
  await login(app, other.username, 'password1')

  // A username that does not exist is locked out the same way (and its attempts are counted as atomically).
  const unknown = await Promise.all(
    Array.from({ length: 30 }, () =>
      app.inject({
        method: 'POST',
        url: '/api/auth/',
        payload: { username: 'nobody-here', password: 'wrong-password' }
      })
    )
  )
  t.equal(unknown.filter((r) => r.statusCode === 401).length, 5, 'five unknown-user attempts were checked')
  t.equal(unknown.filter((r) => r.statusCode === 429).length, 25)
})

t.test('per-address limit counts failures only', async (t) => {
  const app = await build(t, { LOGIN_IP_MAX_FAILURES: 3 })
  const user = await register(app)
  await login(app, user.username, 'password1')
  await login(app, user.username, 'password1')
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/',
      payload: { username: `ghost${i}`, password: 'password1' }
    })
    t.equal(res.statusCode, 401)
  }
  const fourth = await app.inject({
    method: 'POST',
    url: '/api/auth/',
    payload: { username: 'ghost9', password: 'password1' }
  })
  t.equal(fourth.statusCode, 429)
  t.ok(fourth.headers['retry-after'])
  const elsewhere = await app.inject({
    method: 'POST',
    url: '/api/auth/',
    payload: { username: user.username, password: 'password1' },
    remoteAddress: '10.1.2.3'
  })
  t.equal(elsewhere.statusCode, 200, 'another address is not limited')
})

t.test('refresh and logout', async (t) => {
  const app = await build(t)
  const user = await register(app)
  const tokens = await login(app, user.username, 'password1')

  const refreshed = await app.inject({
    method: 'POST',
    url: '/api/auth/refresh/',
    payload: { refresh: tokens.refresh }
  })
  t.equal(refreshed.statusCode, 200)
  t.same(Object.keys(refreshed.json()), ['access'])
  const access2 = refreshed.json().access
  t.equal(
    (await app.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(access2) })).statusCode,
    200
  )

  const asAccess = await app.inject({ method: 'POST', url: '/api/auth/refresh/', payload: { refresh: tokens.access } })
  t.equal(asAccess.statusCode, 401)
  t.same(asAccess.json(), { detail: 'Token is invalid or expired', code: 'token_not_valid' })
  const junk = await app.inject({ method: 'POST', url: '/api/auth/refresh/', payload: { refresh: 'junk' } })
  t.equal(junk.statusCode, 401)
  const missing = await app.inject({ method: 'POST', url: '/api/auth/refresh/', payload: {} })
  t.same(missing.json(), { refresh: ['该字段是必填项。'] })

  t.equal((await app.inject({ method: 'GET', url: '/api/auth/logout/' })).statusCode, 401)
  const out = await app.inject({ method: 'GET', url: '/api/auth/logout/', headers: bearer(tokens.access) })
  t.equal(out.statusCode, 200)
  t.same(out.json(), { detail: '成功登出！' })
  for (const token of [tokens.access, access2]) {
    const res = await app.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(token) })
    t.equal(res.statusCode, 401)
    t.same(res.json(), { detail: 'Given token not valid for any token type', code: 'token_not_valid' })
  }
  const after = await app.inject({ method: 'POST', url: '/api/auth/refresh/', payload: { refresh: tokens.refresh } })
  t.equal(after.statusCode, 401)

  const again = await login(app, user.username, 'password1')
  const post = await app.inject({ method: 'POST', url: '/api/auth/logout/', headers: bearer(again.access) })
  t.equal(post.statusCode, 200)
})

t.test('refresh rotation revokes the old refresh token, and its reuse ends the session', async (t) => {
  const app = await build(t, { ROSTER_ROTATE_REFRESH: true })
  const user = await register(app)
  const tokens = await login(app, user.username, 'password1')
  const first = await app.inject({ method: 'POST', url: '/api/auth/refresh/', payload: { refresh: tokens.refresh } })
  t.equal(first.statusCode, 200)
  const rotated = first.json()
  t.ok(rotated.refresh)
  const reuse = await app.inject({ method: 'POST', url: '/api/auth/refresh/', payload: { refresh: tokens.refresh } })
  t.equal(reuse.statusCode, 401)
  const next = await app.inject({ method: 'POST', url: '/api/auth/refresh/', payload: { refresh: rotated.refresh } })
  t.equal(next.statusCode, 401, 'the whole session ended')
  t.equal(
    (await app.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(rotated.access) })).statusCode,
    401
  )
})

t.test('forged tokens are refused', async (t) => {
  const app = await build(t)
  const user = await register(app)
  const tokens = await login(app, user.username, 'password1')
  const claims = claimsOf(tokens.access)
  const header = JSON.parse(Buffer.from(tokens.access.split('.')[0], 'base64url').toString())
  const url = `/api/users/${user.id}/`
  const forged: Record<string, string> = {
    'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
    'HMAC with the public key as secret': (() => {
      const head = b64({ alg: 'HS256', typ: 'JWT', kid: header.kid })
      const body = b64(claims)
      const sig = createHmac('sha256', app.identity.tokens.key.publicPem).update(`${head}.${body}`).digest('base64url')
      return `${head}.${body}.${sig}`
    })(),
    tampered: `${tokens.access.split('.')[0]}.${b64({ ...claims, user_id: 1, is_staff: true })}.${tokens.access.split('.')[2]}`,
    'refresh as access': tokens.refresh,
    'wrong kid': (() => {
      const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
      return signToken({ alg: 'EdDSA', typ: 'JWT', kid: 'someone-else' }, { ...claims, jti: randomUUID() }, key)
    })(),
    'right kid, other key': (() => {
      const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
      return signToken({ alg: 'EdDSA', typ: 'JWT', kid: header.kid }, { ...claims, jti: randomUUID() }, key)
    })(),
    expired: signToken(
      { alg: 'EdDSA', typ: 'JWT', kid: header.kid },
      { ...claims, iat: 1000, exp: 2000 },
      app.identity.tokens.key.privatePem
    ),
    garbage: 'not.a.token'
  }
  for (const [name, token] of Object.entries(forged)) {
    const res = await app.inject({ method: 'GET', url, headers: bearer(token) })
    t.equal(res.statusCode, 401, name)
    t.equal(res.json().code, 'token_not_valid', name)
  }
  const basic = await app.inject({ method: 'GET', url, headers: { authorization: 'Basic abc' } })
  t.equal(basic.statusCode, 401)
  const publicRoute = await app.inject({
    method: 'POST',
    url: '/api/users/',
    headers: bearer('junk'),
    payload: { username: 'x1', password: 'password1' }
  })
  t.equal(publicRoute.statusCode, 401, 'an invalid token is refused even where none is needed')
})

t.test('JWKS and admin bootstrap', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/api/auth/jwks/' })
  t.equal(res.statusCode, 200)
  const [key] = res.json().keys
  t.match(key, { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid: String, x: String })
  t.notOk('d' in key, 'no private part')
  const admin = await login(app, ADMIN.username, ADMIN.password)
  t.equal(claimsOf(admin.access).is_staff, true)
})
