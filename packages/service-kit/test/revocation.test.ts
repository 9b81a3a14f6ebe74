import t from 'tap'
import { generateKeyPairSync, randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { formatRevokedSessions, parseRevokedSessions, staticKeyResolver, type ServiceApp } from '../src/index.js'
import { REVOKED_SESSIONS_HEADER_MAX } from '../src/plugins/revocation.js'
import { eventually, isolate, signToken } from '../src/testing/index.js'
import { kitApp } from './kit-app.js'

const now = () => Math.floor(Date.now() / 1000)

/** The revocation list shared through the NATS KV bucket, as the replicas of a service see it. */
t.test('revocations reach every replica', async (t) => {
  const iso = await isolate(t)
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const resolveKey = staticKeyResolver(
    new Map([['k', { pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), alg: 'EdDSA' }]])
  )
  const replica = () =>
    kitApp(t, iso, {
      name: 'kitrevocation',
      resolveKey,
      routes: [
        async (app: FastifyInstance) => {
          app.get('/api/me', async (request) => ({ sid: request.caller?.sid }))
        }
      ]
    })
  const tokenFor = (sid: string) =>
    signToken(
      { alg: 'EdDSA', typ: 'JWT', kid: 'k' },
      { token_type: 'access', exp: now() + 300, iat: now(), jti: randomUUID(), user_id: 1, sid },
      privateKey
    )
  const status = async (app: ServiceApp, token: string) =>
    (await app.inject({ method: 'GET', url: '/api/me', headers: { authorization: `Bearer ${token}` } })).statusCode
  const [a, b] = [await replica(), await replica()]

  t.test('a session revoked on one replica is refused by the others within moments', async (t) => {
    const sid = randomUUID()
    const token = tokenFor(sid)
    t.same([await status(a, token), await status(b, token)], [200, 200])
    await a.revocations.publish(sid, now() + 300)
    t.equal(await status(a, token), 401, 'at once where it was published')
    await eventually(async () => (await status(b, token)) === 401)
    t.ok(b.revocations.isRevoked(sid))
    t.equal(await status(b, tokenFor(randomUUID())), 200, 'other sessions are untouched')
  })

  t.test('a replica started later loads the revocations made before it', async (t) => {
    const sid = randomUUID()
    await a.revocations.publish(sid, now() + 300)
    const late = await replica()
    await late.revocations.ready
    t.ok(late.revocations.isRevoked(sid), 'known once the replica is ready')
    t.equal(await status(late, tokenFor(sid)), 401)
  })

  t.test('a remembered revocation is refused at once by the replica that remembers it', async (t) => {
    const sid = randomUUID()
    const token = tokenFor(sid)
    t.equal(await status(b, token), 200)
    b.revocations.remember(sid, now() + 300)
    t.equal(await status(b, token), 401)
  })
})

t.test('the revoked-sessions header', async (t) => {
  const sid = () => randomUUID()

  t.test('what is formatted is parsed back', async (t) => {
    const revoked = [
      { sid: sid(), exp: now() + 10 },
      { sid: sid(), exp: now() + 20 }
    ]
    t.same(parseRevokedSessions(formatRevokedSessions(revoked)), revoked)
    t.same(parseRevokedSessions(undefined), [])
    t.same(parseRevokedSessions(''), [])
  })

  t.test('at most the bounded number is carried', async (t) => {
    const many = Array.from({ length: REVOKED_SESSIONS_HEADER_MAX + 50 }, () => ({ sid: sid(), exp: now() + 10 }))
    const text = formatRevokedSessions(many)
    t.equal(parseRevokedSessions(text).length, REVOKED_SESSIONS_HEADER_MAX)
    const joined = many.map((r) => `${r.sid},${r.exp}`).join(';')
    t.equal(parseRevokedSessions(joined).length, REVOKED_SESSIONS_HEADER_MAX, 'a longer header is cut, not trusted')
  })

  t.test('anything malformed in it is ignored, the rest kept', async (t) => {
    const good = { sid: sid(), exp: now() + 10 }
    const hostile = [
      'not-a-uuid,123',
      `${sid().toUpperCase()},123`,
      `${sid()},`,
      `${sid()},-5`,
      `${sid()},0`,
      `${sid()},1.5`,
      `${sid()},1e400`,
      `${sid()},123,extra`,
      `${sid()}`,
      ';;;',
      `${good.sid},${good.exp}`
    ].join(';')
    t.same(parseRevokedSessions(hostile), [good])
    t.same(parseRevokedSessions([`${good.sid},${good.exp}`, 'junk']), [good], 'repeated headers are read together')
  })
})
