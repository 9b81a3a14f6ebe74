import t from 'tap'
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { message, staticKeyResolver, type KeyResolver } from '../src/index.js'
import { isolate, signToken } from '../src/testing/index.js'
import { kitApp } from './kit-app.js'

interface TestKey {
  kid: string
  alg: 'EdDSA' | 'ES256'
  privateKey: KeyObject
  pem: string
}

function testKey(kid: string, alg: TestKey['alg']): TestKey {
  const { privateKey, publicKey } =
    alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  return { kid, alg, privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

const now = () => Math.floor(Date.now() / 1000)
const claims = (extra: Record<string, unknown> = {}) => ({
  token_type: 'access',
  exp: now() + 300,
  iat: now(),
  jti: randomUUID(),
  user_id: 7,
  sid: randomUUID(),
  ...extra
})
const tokenOf = (key: TestKey, body: Record<string, unknown> = claims(), header: Record<string, unknown> = {}) =>
  signToken({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header }, body, key.privateKey)
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/** The kit's auth plugin (@fastify/jwt) on a small service: what it accepts, what it refuses and how. */
t.test('auth', async (t) => {
  const iso = await isolate(t)
  const ed = testKey('ed-key', 'EdDSA')
  const ec = testKey('ec-key', 'ES256')
  const known = staticKeyResolver(new Map([ed, ec].map((k) => [k.kid, { pem: k.pem, alg: k.alg }])))
  const lookups: (string | undefined)[] = []
  const resolveKey: KeyResolver = (header) => {
    lookups.push(header.kid)
    return known(header)
  }
  const app = await kitApp(t, iso, {
    name: 'kitauth',
    resolveKey,
    routes: [
      async (app: FastifyInstance) => {
        app.get('/api/me', async (request) => ({ user: request.caller?.userId, staff: request.caller?.isStaff }))
        app.get('/api/admin', { config: { access: 'admin' } }, async () => ({ ok: true }))
        app.get('/api/open', { config: { access: 'public' } }, async (request) => ({
          user: request.caller?.userId ?? null
        }))
      }
    ]
  })
  const me = (headers: Record<string, string> = {}) => app.inject({ method: 'GET', url: '/api/me', headers })
  const refusal = (await me(bearer('junk'))).json()

  t.test("a refusal is DRF's token_not_valid", async (t) => {
    t.same(refusal, { detail: message('token_not_valid', 'zh'), code: 'token_not_valid' })
  })

  t.test('tokens of either allowed algorithm are accepted, and the caller is set', async (t) => {
    for (const key of [ed, ec]) {
      const res = await me(bearer(tokenOf(key, claims({ is_staff: true }))))
      t.equal(res.statusCode, 200, key.alg)
      t.same(res.json(), { user: 7, staff: true }, key.alg)
    }
    const open = await app.inject({ method: 'GET', url: '/api/open', headers: bearer(tokenOf(ed)) })
    t.same(open.json(), { user: 7 }, 'a public route knows its caller too')
  })

  t.test('forged, altered and misused tokens are refused with the same answer', async (t) => {
    const good = tokenOf(ed)
    const [head, body, signature] = good.split('.')
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
    const other = testKey('ed-key', 'EdDSA')
    const forged: Record<string, string> = {
      'alg none': signToken({ alg: 'none', typ: 'JWT', kid: ed.kid }, claims()),
      'alg none, no kid': signToken({ alg: 'none', typ: 'JWT' }, claims()),
      'HS256 keyed with the public key': signToken({ alg: 'HS256', kid: ed.kid }, claims(), { hmac: ed.pem }),
      'HS256 claiming the EC key': signToken({ alg: 'HS256', kid: ec.kid }, claims(), { hmac: ec.pem }),
      'unknown kid': tokenOf({ ...other, kid: 'nobody' }),
      'no kid': signToken({ alg: 'EdDSA', typ: 'JWT' }, claims(), ed.privateKey),
      'right kid, another key': tokenOf(other),
      'kid of the other known key': tokenOf(ed, claims(), { kid: ec.kid }),
      'kid and alg of the other known key': tokenOf(ed, claims(), { kid: ec.kid, alg: 'ES256' }),
      'alg swapped under the right kid': tokenOf(ed, claims(), { alg: 'ES256' }),
      expired: tokenOf(ed, claims({ iat: now() - 600, exp: now() - 300 })),
      'tampered claims': `${head}.${b64({ ...claims(), user_id: 1, is_staff: true })}.${signature}`,
      'tampered header': `${b64({ alg: 'EdDSA', typ: 'JWT', kid: ed.kid, x: 1 })}.${body}.${signature}`,
      'signature cut': `${head}.${body}.`,
      'refresh token': tokenOf(ed, claims({ token_type: 'refresh' })),
      'claims outside the contract': tokenOf(ed, claims({ user_id: 'seven' })),
      'no session id': tokenOf(ed, claims({ sid: undefined })),
      garbage: 'not.a.token',
      'two dots only': '..'
    }
    for (const [name, token] of Object.entries(forged)) {
      const res = await me(bearer(token))
      t.equal(res.statusCode, 401, name)
      t.same(res.json(), refusal, name)
    }
    const open = await app.inject({ method: 'GET', url: '/api/open', headers: bearer(forged['alg none']) })
    t.equal(open.statusCode, 401, 'an invalid token is refused even on a public route')
  })

  t.test('the Authorization header', async (t) => {
    const token = tokenOf(ed)
    const spaced = await me({ authorization: `bearer   ${token}  ` })
    t.equal(spaced.statusCode, 200, 'scheme in any case, spaces around')
    const anonymous = { detail: message('not_authenticated', 'zh') }
    t.same((await me({ authorization: '   ' })).json(), anonymous, 'blank is no header')
    t.equal((await me()).statusCode, 401)
    t.same((await me()).json(), anonymous)
    for (const value of ['Basic abc', 'Bearer', `Bearer ${token} extra`, `Token ${token}`]) {
      const res = await me({ authorization: value })
      t.equal(res.statusCode, 401, value.slice(0, 12))
      t.same(res.json(), refusal, value.slice(0, 12))
    }
  })

  t.test('an unknown kid is looked up once, not on every request', async (t) => {
    const stranger = testKey('stranger', 'EdDSA')
    lookups.length = 0
    for (let i = 0; i < 5; i++) t.equal((await me(bearer(tokenOf(stranger)))).statusCode, 401)
    t.same(lookups, ['stranger'])
    lookups.length = 0
    await me(bearer(signToken({ alg: 'none', typ: 'JWT', kid: 'none-kid' }, claims())))
    await me(bearer(signToken({ alg: 'HS256', typ: 'JWT', kid: 'hs-kid' }, claims(), { hmac: 'x' })))
    t.same(lookups, [], 'a refused algorithm is never looked up')
  })

  t.test('a revoked session is refused, other sessions of the user are not', async (t) => {
    const sid = randomUUID()
    const token = tokenOf(ed, claims({ sid }))
    t.equal((await me(bearer(token))).statusCode, 200, 'accepted (and now cached) before')
    app.revocations.remember(sid, now() + 300)
    const res = await me(bearer(token))
    t.equal(res.statusCode, 401, 'refused after, although its verification was cached')
    t.same(res.json(), refusal)
    t.equal((await me(bearer(tokenOf(ed)))).statusCode, 200)
  })

  t.test('access levels', async (t) => {
    const admin = (token: string) => app.inject({ method: 'GET', url: '/api/admin', headers: bearer(token) })
    t.equal((await admin(tokenOf(ed, claims({ is_staff: true })))).statusCode, 200)
    const user = await admin(tokenOf(ed))
    t.equal(user.statusCode, 403)
    t.same(user.json(), { detail: message('permission_denied', 'zh') })
    t.equal((await app.inject({ method: 'GET', url: '/api/admin' })).statusCode, 401)
  })
})
