import t from 'tap'
import Fastify from 'fastify'
import { connect } from 'node:net'
import {
  BaseConfigSchema,
  ConfigError,
  loadConfig,
  errorsPlugin,
  healthPlugin,
  injectInternal,
  internalListenerPlugin,
  listenInternal,
  metricsPlugin,
  refuseConnect,
  refuseExpectation,
  serverOptions
} from '../src/index.js'
import { swaggerPlugin } from '../src/plugins/swagger.js'

/** A kit app as `buildService` assembles it (without a database: these routes need none), listening on both ports. */
async function twoListeners(t: { after(fn: () => unknown): void }) {
  const app = Fastify(serverOptions('kit-test', 'silent'))
  app.server.on('connect', refuseConnect) // as baseServer does
  app.server.on('checkExpectation', refuseExpectation)
  await app.register(internalListenerPlugin, { internalPrefixes: ['/docs'] })
  await app.register(errorsPlugin)
  await app.register(healthPlugin)
  await app.register(metricsPlugin, { service: 'kit-test' })
  await app.register(swaggerPlugin, { service: 'kit-test', description: 'test' })
  app.get('/internal/things/:pk', async (request) => ({ thing: (request.params as { pk: string }).pk }))
  app.get('/private', { config: { internal: true } }, async () => ({ private: true }))
  app.get('/api/things/', { schema: { tags: ['things'] } }, async () => ({ public: true }))
  app.registerMethodNotAllowed()
  t.after(() => app.close())
  const publicUrl = await app.listen({ host: '127.0.0.1', port: 0 })
  const internalUrl = await listenInternal(app, { host: '127.0.0.1', port: 0 })
  return { app, publicUrl, internalUrl, port: (url: string) => Number(new URL(url).port) }
}

/** Sends bytes as they are (no client normalizes the path) and answers the raw response. */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' })
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    socket.on('error', reject)
    socket.write(request)
  })
}

const statusOf = (response: string) => Number(response.slice(9, 12))
const bodyOf = (response: string) => response.slice(response.indexOf('\r\n\r\n') + 4)

t.test('internal routes exist only on the internal listener', async (t) => {
  const { publicUrl, internalUrl } = await twoListeners(t)
  for (const path of [
    '/internal/things/1',
    '/private',
    '/metrics',
    '/ready',
    '/docs',
    '/docs/',
    '/docs/json',
    '/docs/yaml',
    '/docs/static/index.html'
  ]) {
    const outside = await fetch(publicUrl + path, { redirect: 'manual' })
    t.equal(outside.status, 404, `public ${path}`)
    t.same(await outside.json(), { detail: '未找到。' }, `public ${path}: the DRF shape`)
    const inside = await fetch(internalUrl + path, { redirect: 'manual' })
    t.ok(inside.status < 400, `internal ${path} answers (${inside.status})`)
    await inside.body?.cancel()
  }
  t.same(await (await fetch(`${internalUrl}/internal/things/7`)).json(), { thing: '7' })
  const docs = (await (await fetch(`${internalUrl}/docs/json`)).json()) as { paths: Record<string, unknown> }
  t.ok(docs.paths['/api/things/'], 'the internal docs document the public API')
  t.notOk(
    Object.keys(docs.paths).some((p) => /internal|private|metrics|ready/.test(p)),
    'and nothing internal'
  )
  for (const url of [publicUrl, internalUrl]) {
    t.equal((await fetch(`${url}/health`)).status, 200, `liveness on ${url}`)
    t.same(await (await fetch(`${url}/api/things/`)).json(), { public: true }, `the API on ${url}`)
  }
})

t.test('no spelling of an internal path reaches it on the public listener', async (t) => {
  const { publicUrl, internalUrl, port } = await twoListeners(t)
  const variants = [
    '/metrics/',
    '//metrics',
    '/metrics?format=prometheus',
    '/%6Detrics',
    '/%6d%65%74%72%69%63%73',
    '/ready/',
    '/internal/things/1/',
    '//internal//things//1',
    '/internal%2Fthings%2F1',
    '/%69nternal/things/1',
    '/internal/things/1?x=1#frag',
    '/./metrics',
    '/api/../metrics',
    '/api/things/../../internal/things/1',
    '/api/things/..%2F..%2Finternal%2Fthings%2F1',
    '/api\\..\\metrics',
    '/docs//json',
    '/%64ocs/json',
    'http://127.0.0.1/metrics',
    '*'
  ]
  for (const path of variants) {
    for (const method of ['GET', 'HEAD', 'POST', 'OPTIONS', 'DELETE']) {
      const response = await raw(
        port(publicUrl),
        `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`
      )
      const status = statusOf(response)
      t.ok(status === 404 || status === 400, `${method} ${path} on the public port: ${status}`)
      t.notMatch(response, /process_cpu|"checks"|openapi|"thing"/, `${method} ${path} reveals nothing`)
      t.notMatch(response, /^allow:/im, `${method} ${path} names no methods`)
      if (method !== 'HEAD') t.ok(JSON.parse(bodyOf(response)).detail, `${method} ${path} in the DRF shape`)
    }
  }
  // The same spellings that the router folds together do reach it on the internal listener.
  for (const path of ['/metrics/', '//metrics', '/%6Detrics']) {
    t.equal(
      statusOf(await raw(port(internalUrl), `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)),
      200,
      `internal ${path}`
    )
  }
})

t.test('headers cannot turn a public request into an internal one', async (t) => {
  const { publicUrl } = await twoListeners(t)
  const headers = {
    'x-forwarded-port': '9080',
    'x-internal': '1',
    'x-original-url': '/metrics',
    'x-rewrite-url': '/metrics',
    'x-forwarded-host': '127.0.0.1:9080',
    host: '127.0.0.1:9080'
  }
  for (const path of ['/metrics', '/internal/things/1', '/private']) {
    t.equal((await fetch(publicUrl + path, { headers })).status, 404, path)
  }
})

t.test('the internal listener shares the public one’s error answers and limits', async (t) => {
  const { app, internalUrl, port } = await twoListeners(t)
  const server = app.internalServer!
  for (const key of ['headersTimeout', 'requestTimeout', 'keepAliveTimeout', 'timeout'] as const) {
    t.equal(server[key], app.server[key], key)
  }
  const bad = await raw(port(internalUrl), 'GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n')
  t.equal(statusOf(bad), 400, 'a request Node refuses is a 400')
  t.match(JSON.parse(bodyOf(bad)), { detail: /请求格式错误/ }, 'in the API shape')
  const tunnel = await raw(port(internalUrl), 'CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: 127.0.0.1:5432\r\n\r\n')
  t.equal(statusOf(tunnel), 405, 'a CONNECT is refused there too')
  t.same(JSON.parse(bodyOf(tunnel)), { detail: '方法 “CONNECT” 不被允许。' })
  const expecting = await raw(
    port(internalUrl),
    'GET /metrics HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nAccept-Language: en\r\n\r\n'
  )
  t.equal(statusOf(expecting), 417, 'an Expect it cannot meet is a 417 there too')
  t.same(JSON.parse(bodyOf(expecting)), { detail: 'The Expect header cannot be met: only 100-continue is supported.' })
  const unknown = await fetch(`${internalUrl}/nothing-here`)
  t.equal(unknown.status, 404)
  t.same(await unknown.json(), { detail: '未找到。' })
  await t.rejects(listenInternal(app, { host: '127.0.0.1', port: 0 }), /already started/)
})

t.test('injectInternal reaches internal routes; plain inject does not', async (t) => {
  const app = Fastify(serverOptions('kit-test', 'silent'))
  await app.register(internalListenerPlugin)
  await app.register(errorsPlugin)
  await app.register(healthPlugin)
  t.after(() => app.close())
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 404)
  const ready = await injectInternal(app, '/ready')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready', checks: {} })
  t.equal((await injectInternal(app, { method: 'GET', url: '/health' })).statusCode, 200)
  t.equal(app.internalServer, null, 'inject starts no listener')
})

t.test('an internal port that is taken stops start-up with the error', async (t) => {
  const first = await twoListeners(t)
  const app = Fastify(serverOptions('kit-test', 'silent'))
  await app.register(internalListenerPlugin)
  t.after(() => app.close())
  await t.rejects(listenInternal(app, { host: '127.0.0.1', port: first.port(first.internalUrl) }), {
    code: 'EADDRINUSE'
  })
  t.equal(app.internalServer, null)
})

t.test('INTERNAL_PORT is read like PORT and must differ from it', async (t) => {
  t.equal(loadConfig(BaseConfigSchema, {}, {}).INTERNAL_PORT, 3100, 'the kit default (each service sets its own)')
  t.equal(loadConfig(BaseConfigSchema, {}, { INTERNAL_PORT: '9090' }).INTERNAL_PORT, 9090)
  t.throws(() => loadConfig(BaseConfigSchema, {}, { INTERNAL_PORT: 'x' }), ConfigError)
  t.throws(() => loadConfig(BaseConfigSchema, {}, { INTERNAL_PORT: '70000' }), ConfigError)
  t.throws(
    () => loadConfig(BaseConfigSchema, {}, { PORT: '4000', INTERNAL_PORT: '4000' }),
    /INTERNAL_PORT must differ from PORT/
  )
  t.equal(
    loadConfig(BaseConfigSchema, {}, { PORT: '0', INTERNAL_PORT: '0' }).INTERNAL_PORT,
    0,
    'both free ports in tests'
  )
})

t.test('what is attached to the public server for slow or odd clients is attached to the internal one', async (t) => {
  const app = Fastify({
    ...serverOptions('kit-test', 'silent'),
    connectionTimeout: 4321,
    keepAliveTimeout: 1234,
    requestTimeout: 5678
  })
  await app.register(internalListenerPlugin)
  t.after(() => app.close())
  const onTimeout = (socket: { destroy(): void }) => socket.destroy()
  app.server.on('timeout', onTimeout)
  await app.listen({ host: '127.0.0.1', port: 0 })
  await listenInternal(app, { host: '127.0.0.1', port: 0 })
  const server = app.internalServer!
  t.equal(server.timeout, 4321)
  t.equal(server.keepAliveTimeout, 1234)
  t.equal(server.requestTimeout, 5678)
  t.ok(server.listeners('timeout').includes(onTimeout), 'timeout handling')
  t.equal(server.listeners('clientError').length, app.server.listeners('clientError').length, 'clientError handling')
})
