import { connect } from 'node:net'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp as buildIdentity, testConfig, ADMIN } from '@roster/identity/testing'
import { isolate } from '@roster/service-kit/testing'
import { injectInternal, listenInternal, loadConfig } from '@roster/service-kit'
import { buildApp } from '../src/app.js'
import { GatewayConfigSchema, readConfig } from '../src/config.js'
import { upstreamOf } from '../src/routing.js'

t.test('routing follows ownership', async (t) => {
  t.equal(upstreamOf('/api/users/'), 'identity')
  t.equal(upstreamOf('/api/users/7/'), 'identity')
  t.equal(upstreamOf('/api/users/7/groups/'), 'identity')
  t.equal(upstreamOf('/api/users/7/user-logs/'), 'audit')
  t.equal(upstreamOf('/api/users/7/user-logs'), 'audit')
  t.equal(upstreamOf('/api/auth/refresh/'), 'identity')
  t.equal(upstreamOf('/api/groups/'), 'directory')
  t.equal(upstreamOf('/api/groups/3/'), 'directory')
  t.equal(upstreamOf('/api/groups/3/users/'), 'identity')
  t.equal(upstreamOf('/api/groups/3/users/9/'), 'identity')
  t.equal(upstreamOf('/api/occupations/3/users/'), 'identity')
  t.equal(upstreamOf('/api/occupations/3/'), 'directory')
  t.equal(upstreamOf('/api/user-logs/'), 'audit')
  t.equal(upstreamOf('/api/black-list/5/'), 'audit')
  t.equal(upstreamOf('/api/usersx/'), null)
  t.equal(upstreamOf('/api/'), null)
})

async function system(t: { after(fn: () => unknown): void }, overrides: Record<string, unknown> = {}) {
  const iso = await isolate(t)
  const identity = await buildIdentity(testConfig(iso))
  t.after(() => identity.close())
  await identity.listen({ host: '127.0.0.1', port: 0 })
  const identityUrl = `http://127.0.0.1:${(identity.server.address() as any).port}`
  const identityInternalUrl = await listenInternal(identity, { host: '127.0.0.1', port: 0 })
  const gateway = await buildApp(
    readConfig({
      IDENTITY_URL: identityUrl,
      DIRECTORY_URL: 'http://127.0.0.1:9',
      AUDIT_URL: 'http://127.0.0.1:9',
      IDENTITY_INTERNAL_URL: identityInternalUrl,
      DIRECTORY_INTERNAL_URL: 'http://127.0.0.1:1',
      AUDIT_INTERNAL_URL: 'http://127.0.0.1:2',
      NATS_URL: iso.NATS_URL,
      NATS_PREFIX: iso.NATS_PREFIX,
      LOG_LEVEL: 'silent',
      ...overrides
    })
  )
  t.after(() => gateway.close())
  await gateway.ready()
  return { identity, gateway, identityUrl, identityInternalUrl }
}

async function loginThrough(
  gateway: FastifyInstance,
  username: string,
  password: string,
  headers: Record<string, string> = {}
) {
  const res = await gateway.inject({ method: 'POST', url: '/api/auth/', payload: { username, password }, headers })
  if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${res.body}`)
  return res.json() as { access: string; refresh: string }
}

t.test('proxies to identity with the client address and request id it set itself', async (t) => {
  const { identity, gateway } = await system(t)
  const reg = await gateway.inject({
    method: 'POST',
    url: '/api/users',
    payload: { username: 'viagw', password: 'password1' },
    headers: { 'x-request-id': 'req-123' }
  })
  t.equal(reg.statusCode, 200, reg.body)
  t.equal(reg.headers['x-request-id'], 'req-123')

  await loginThrough(gateway, 'viagw', 'password1', { 'x-forwarded-for': '6.6.6.6', 'user-agent': 'tap-agent' })
  const [session] = await identity.orm.em.fork().getConnection().execute('select ip, user_agent from session')
  t.equal(session.ip, '127.0.0.1', 'a client X-Forwarded-For is not believed')
  t.equal(session.user_agent, 'tap-agent')

  const generated = await gateway.inject({ method: 'GET', url: '/api/auth/jwks/' })
  t.equal(generated.statusCode, 200)
  t.match(generated.headers['x-request-id'], /^[0-9a-f-]{36}$/)
})

t.test('a trusted proxy in front of the gateway may name the client', async (t) => {
  const { identity, gateway } = await system(t, { TRUSTED_PROXIES: '127.0.0.1' })
  await gateway.inject({ method: 'POST', url: '/api/users/', payload: { username: 'behindlb', password: 'password1' } })
  await loginThrough(gateway, 'behindlb', 'password1', { 'x-forwarded-for': '203.0.113.9' })
  const [session] = await identity.orm.em.fork().getConnection().execute('select ip from session')
  t.equal(session.ip, '203.0.113.9')
})

t.test('tokens are verified at the gateway, revocation included', async (t) => {
  const { gateway } = await system(t)
  const admin = await loginThrough(gateway, ADMIN.username, ADMIN.password)
  const ok = await gateway.inject({
    method: 'GET',
    url: '/api/users/',
    headers: { authorization: `Bearer ${admin.access}` }
  })
  t.equal(ok.statusCode, 200)
  t.ok(ok.headers['x-total-count'])

  const forged = admin.access.slice(0, -4) + 'AAAA'
  const bad = await gateway.inject({
    method: 'GET',
    url: '/api/users/',
    headers: { authorization: `Bearer ${forged}` }
  })
  t.equal(bad.statusCode, 401)
  t.same(bad.json(), { detail: 'Given token not valid for any token type', code: 'token_not_valid' })
  t.equal(bad.headers['www-authenticate'], 'Bearer realm="api"')

  const out = await gateway.inject({
    method: 'POST',
    url: '/api/auth/logout/',
    headers: { authorization: `Bearer ${admin.access}` }
  })
  t.equal(out.statusCode, 200)
  t.same(out.json(), { detail: '成功登出！' })
  const after = await gateway.inject({
    method: 'GET',
    url: '/api/users/',
    headers: { authorization: `Bearer ${admin.access}` }
  })
  t.equal(after.statusCode, 401)
})

t.test('errors at the edge keep the API shape', async (t) => {
  const { gateway } = await system(t)
  const unknown = await gateway.inject({ method: 'GET', url: '/api/nothing-here/' })
  t.equal(unknown.statusCode, 404)
  t.same(unknown.json(), { detail: '未找到。' })

  const big = await gateway.inject({
    method: 'POST',
    url: '/api/users/',
    payload: JSON.stringify({ username: 'x', password: 'y'.repeat(1100 * 1024) }),
    headers: { 'content-type': 'application/json' }
  })
  t.equal(big.statusCode, 413)
  t.ok(big.json().detail)

  const notJson = await gateway.inject({
    method: 'POST',
    url: '/api/users/',
    payload: '{not json',
    headers: { 'content-type': 'application/json' }
  })
  t.equal(notJson.statusCode, 400)

  const form = await gateway.inject({
    method: 'POST',
    url: '/api/users/',
    payload: 'a=b',
    headers: { 'content-type': 'application/x-www-form-urlencoded' }
  })
  t.equal(form.statusCode, 415)

  const down = await gateway.inject({ method: 'GET', url: '/api/groups/' })
  t.equal(down.statusCode, 503, 'an unreachable service is a 503 in the API shape')
  t.ok(down.json().detail)
})

t.test('bodies over the network: 100-continue, and over 1 MiB declared or streamed', async (t) => {
  const { gateway } = await system(t)
  const base = await gateway.listen({ host: '127.0.0.1', port: 0 })
  const post = (body: string | ReadableStream, headers: Record<string, string> = {}) =>
    fetch(`${base}/api/users/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      duplex: 'half'
    } as RequestInit)

  // curl sends `Expect: 100-continue` with any body over 1 KiB; it must not reach the service.
  const expecting = await gateway.inject({
    method: 'POST',
    url: '/api/users/',
    payload: { username: 'expecting', password: 'password1', pad: 'x'.repeat(2000) },
    headers: { expect: '100-continue' }
  })
  t.equal(expecting.statusCode, 200, expecting.body)

  const five = 'x'.repeat(5 * 1024 * 1024)
  const declared = await post(JSON.stringify({ username: 'big', password: five }))
  t.equal(declared.status, 413, 'a body declared larger than 1 MiB is refused before it is forwarded')
  t.match(await declared.json(), { detail: /1048576/ })

  const chunks = (size: number) =>
    new ReadableStream({
      start(controller) {
        const piece = new TextEncoder().encode('x'.repeat(64 * 1024))
        for (let sent = 0; sent < size; sent += piece.length) controller.enqueue(piece)
        controller.close()
      }
    })
  const streamed = await post(chunks(5 * 1024 * 1024))
  t.equal(streamed.status, 413, 'a chunked body is counted while it is forwarded')
  t.match(await streamed.json(), { detail: /1048576/ })

  const small = await post(
    new ReadableStream({
      start: (c) => (c.enqueue(new TextEncoder().encode('{"username": "chunked", "password": "password1"}')), c.close())
    })
  )
  t.equal(small.status, 200, 'a small chunked body passes')
})

t.test("requests Node's HTTP parser refuses still get the API's error shape", async (t) => {
  const { gateway } = await system(t)
  await gateway.listen({ host: '127.0.0.1', port: 0 })
  const { port } = gateway.server.address() as { port: number }
  const raw = (request: Buffer) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.end(request))
      let answer = ''
      socket.on('data', (chunk) => (answer += chunk.toString('utf8')))
      socket.on('end', () => resolve(answer))
      socket.on('error', reject)
    })
  // What curl sends for `curl "http://…/api/groups/?search=科"`: the UTF-8 bytes, not percent-encoded.
  const utf8 = await raw(Buffer.from('GET /api/groups/?search=科 HTTP/1.1\r\nHost: x\r\n\r\n', 'utf8'))
  t.match(utf8, /^HTTP\/1\.1 400 /)
  const body = JSON.parse(utf8.slice(utf8.indexOf('\r\n\r\n') + 4))
  t.match(body, { detail: /^请求格式错误/, non_field_errors: [/^请求格式错误/] })

  const headers = await raw(Buffer.from(`GET /api/groups/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`))
  t.match(headers, /^HTTP\/1\.1 431 /)
  t.match(JSON.parse(headers.slice(headers.indexOf('\r\n\r\n') + 4)), { detail: '请求头过大。' })
})

t.test('merged OpenAPI and Swagger UI', async (t) => {
  const { gateway } = await system(t)
  const doc = await gateway.inject({ method: 'GET', url: '/docs/json' })
  t.equal(doc.statusCode, 200)
  const json = doc.json()
  t.ok(json.paths['/api/users/'], 'identity paths are merged')
  t.ok(json.paths['/api/auth/'])
  t.ok(json.components.schemas.User)
  const ui = await gateway.inject({ method: 'GET', url: '/docs/' })
  t.equal(ui.statusCode, 200)
  t.match(ui.body, /swagger/i)
  t.equal((await gateway.inject({ method: 'GET', url: '/health' })).statusCode, 200, '/health')
  for (const path of ['/health', '/ready', '/metrics']) {
    const res = await injectInternal(gateway, path)
    t.equal(res.statusCode, 200, `internal ${path}`)
  }
  t.notOk(
    Object.keys(json.paths).some((p) => /^\/(ready|metrics|internal)/.test(p)),
    'nothing internal is documented'
  )
})

t.test('internal ports and URLs by default', async (t) => {
  t.match(loadConfig(GatewayConfigSchema, {}, {}), {
    PORT: 8080,
    INTERNAL_PORT: 9080,
    IDENTITY_URL: 'http://127.0.0.1:3001',
    IDENTITY_INTERNAL_URL: 'http://127.0.0.1:3101',
    DIRECTORY_INTERNAL_URL: 'http://127.0.0.1:3102',
    AUDIT_INTERNAL_URL: 'http://127.0.0.1:3103'
  })
  t.throws(
    () => loadConfig(GatewayConfigSchema, {}, { PORT: '8080', INTERNAL_PORT: '8080' }),
    /INTERNAL_PORT must differ/
  )
  t.throws(
    () =>
      readConfig(
        {},
        { IDENTITY_URL: 'http://roster-identity:3101/', IDENTITY_INTERNAL_URL: 'http://roster-identity:3101' }
      ),
    /IDENTITY_URL must not be an internal listener \(it is IDENTITY_INTERNAL_URL\)/,
    'the gateway refuses to forward to an internal port'
  )
  t.throws(() => readConfig({}, { AUDIT_URL: 'http://127.0.0.1:3102' }), /AUDIT_URL must not be an internal listener/)
  t.equal(readConfig({}, {}).AUDIT_URL, 'http://127.0.0.1:3003')
})

t.test('the gateway serves /metrics and /ready only on its internal port, and forwards nothing internal', async (t) => {
  const { gateway, identityUrl, identityInternalUrl } = await system(t)
  const publicUrl = await gateway.listen({ host: '127.0.0.1', port: 0 })
  const internalUrl = await listenInternal(gateway, { host: '127.0.0.1', port: 0 })
  for (const path of ['/ready', '/metrics', '/internal/users/1']) {
    const res = await fetch(publicUrl + path)
    t.equal(res.status, 404, `public ${path}`)
    t.same(await res.json(), { detail: '未找到。' })
  }
  for (const path of ['/ready', '/metrics', '/health'])
    t.equal((await fetch(internalUrl + path)).status, 200, `internal ${path}`)
  t.equal((await fetch(`${publicUrl}/docs/json`)).status, 200, 'the merged docs stay public')
  // The second wall: even a path the gateway forwarded to identity's public port cannot reach an internal route.
  t.equal((await fetch(`${identityUrl}/internal/users/1`)).status, 404, "identity's public port has no internal route")
  t.equal((await fetch(`${identityInternalUrl}/internal/users/1`)).status, 200, 'its internal port has')
})

t.test('the flood guard answers 429 with Retry-After in the API shape', async (t) => {
  const { gateway } = await system(t, { RATE_LIMIT_MAX: 3 })
  const codes: number[] = []
  let last
  for (let i = 0; i < 4; i++) {
    last = await gateway.inject({ method: 'GET', url: '/api/auth/jwks/' })
    codes.push(last.statusCode)
  }
  t.same(codes, [200, 200, 200, 429])
  t.ok(Number(last!.headers['retry-after']) > 0)
  t.match(last!.json(), { detail: /请求超过了限速/ })
})
