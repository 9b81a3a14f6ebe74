import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp as buildIdentity, testConfig, ADMIN } from '@roster/identity/testing'
import { eventually, isolate, uniqueName } from '@roster/service-kit/testing'
import { REVOKED_SESSIONS_HEADER } from '@roster/service-kit'
import { buildApp } from '../src/app.js'
import { readConfig } from '../src/config.js'

/**
 * Identity and two gateways: `carrier` on NATS names of its own (it can learn a revocation only from the
 * answer it carries), `other` on identity's (it learns only through the revocation bucket).
 */
async function system(t: { after(fn: () => unknown): void }) {
  const iso = await isolate(t)
  const identity = await buildIdentity(testConfig(iso))
  t.after(() => identity.close())
  await identity.listen({ host: '127.0.0.1', port: 0 })
  const identityUrl = `http://127.0.0.1:${(identity.server.address() as any).port}`
  const gateway = async (prefix: string) => {
    const app = await buildApp(
      readConfig({
        IDENTITY_URL: identityUrl,
        DIRECTORY_URL: 'http://127.0.0.1:9',
        AUDIT_URL: 'http://127.0.0.1:9',
        NATS_URL: iso.NATS_URL,
        NATS_PREFIX: prefix,
        LOG_LEVEL: 'silent'
      })
    )
    t.after(() => app.close())
    await app.ready()
    return app
  }
  const ownPrefix = uniqueName('g').replace('_', '')
  t.after(async () => {
    const { dropNatsPrefix } = await import('@roster/service-kit/testing')
    await dropNatsPrefix(iso.NATS_URL, ownPrefix)
  })
  return { identity, carrier: await gateway(ownPrefix), other: await gateway(iso.NATS_PREFIX) }
}

async function loginThrough(gateway: FastifyInstance, username: string, password: string) {
  const res = await gateway.inject({ method: 'POST', url: '/api/auth/', payload: { username, password } })
  if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${res.body}`)
  return res.json() as { access: string; refresh: string }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/** The gateway's own verdict on a token: a route of the (absent) directory, so identity never sees it. */
async function gatewayAccepts(gateway: FastifyInstance, token: string) {
  const res = await gateway.inject({ method: 'GET', url: '/api/groups/', headers: bearer(token) })
  if (![401, 503].includes(res.statusCode)) throw new Error(`unexpected ${res.statusCode}`)
  return res.statusCode === 503
}

t.test(
  'a logout is refused by the gateway that carried it from its answer on, and by another within moments',
  async (t) => {
    const { carrier, other } = await system(t)
    for (let round = 0; round < 10; round++) {
      const tokens = await loginThrough(carrier, ADMIN.username, ADMIN.password)
      t.equal(await gatewayAccepts(other, tokens.access), true)
      t.equal(await gatewayAccepts(carrier, tokens.access), true)
      const out = await carrier.inject({
        method: round % 2 ? 'POST' : 'GET',
        url: '/api/auth/logout/',
        headers: bearer(tokens.access)
      })
      t.equal(out.statusCode, 200)
      t.notOk(out.headers[REVOKED_SESSIONS_HEADER], 'the internal header is not passed on')
      t.equal(
        await gatewayAccepts(carrier, tokens.access),
        false,
        `round ${round}: refused at once by the gateway that carried it`
      )
      await eventually(async () => !(await gatewayAccepts(other, tokens.access)))
    }
  }
)

t.test('a deactivation answered through a gateway ends the user’s sessions there at once', async (t) => {
  const { carrier } = await system(t)
  const admin = await loginThrough(carrier, ADMIN.username, ADMIN.password)
  const created = await carrier.inject({
    method: 'POST',
    url: '/api/users/',
    payload: { username: uniqueName('u'), password: 'password1' }
  })
  t.equal(created.statusCode, 200)
  const user = created.json()
  const sessions = [
    await loginThrough(carrier, user.username, 'password1'),
    await loginThrough(carrier, user.username, 'password1')
  ]
  for (const s of sessions) t.equal(await gatewayAccepts(carrier, s.access), true)
  const off = await carrier.inject({
    method: 'PATCH',
    url: `/api/users/${user.id}/`,
    headers: bearer(admin.access),
    payload: { is_active: false }
  })
  t.equal(off.statusCode, 200)
  t.notOk(off.headers[REVOKED_SESSIONS_HEADER])
  for (const s of sessions) t.equal(await gatewayAccepts(carrier, s.access), false, 'refused by the gateway itself')
})

t.test('a client sending the internal header revokes nothing', async (t) => {
  const { carrier } = await system(t)
  const tokens = await loginThrough(carrier, ADMIN.username, ADMIN.password)
  const sid = JSON.parse(Buffer.from(tokens.access.split('.')[1], 'base64url').toString()).sid
  const sneaky = await carrier.inject({
    method: 'GET',
    url: '/api/users/',
    headers: { ...bearer(tokens.access), [REVOKED_SESSIONS_HEADER]: `${sid},9999999999` }
  })
  t.equal(sneaky.statusCode, 200)
  t.equal(await gatewayAccepts(carrier, tokens.access), true)
})
