import { connect, createServer as createTcpServer, type Socket } from 'node:net'
import type { IncomingMessage } from 'node:http'
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { PUBLIC_ROUTES } from '@roster/contracts'
import { DEFAULT_CLIENT_TIMEOUTS, errorsPlugin, listenInternal, serverOptions } from '@roster/service-kit'
import { isolate, eventually } from '@roster/service-kit/testing'
import { buildApp as buildIdentity, testConfig } from '@roster/identity/testing'
import { buildApp } from '../src/app.js'
import { readConfig, type GatewayConfig } from '../src/config.js'
import { canonicalPath, upstreamOf } from '../src/routing.js'

type Owner = 'identity' | 'directory' | 'audit'
interface Received {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
}

/** A real Fastify server standing in for a service: records every request that reaches its socket. */
async function recordingUpstream(t: Test, owner: Owner) {
  const received: Received[] = []
  const app = Fastify()
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (_r, body, done) => done(null, body))
  app.server.on('request', (req: IncomingMessage) => {
    // The gateway's own fetch of the service's OpenAPI document is not a client's request.
    if (req.method === 'GET' && req.url === '/docs/json') return
    const entry: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: '' }
    received.push(entry)
    req.on('data', (chunk: Buffer) => (entry.body += chunk.toString('utf8')))
  })
  const finished: string[] = []
  app.all('/*', async (request, reply) => {
    reply.raw.on('finish', () => finished.push(request.url))
    // `?big=N`: an answer of N MiB, for clients that do not read.
    const big = Number((request.query as { big?: string }).big ?? 0)
    if (big > 0) return { owner, pad: 'x'.repeat(big * 1024 * 1024) }
    return { owner, url: request.url }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.after(() => app.close())
  return { received, finished, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

/** A TCP server that accepts and resets every connection as soon as a request arrives. */
async function resettingUpstream(t: Test) {
  const server = createTcpServer((socket) => socket.once('data', () => socket.resetAndDestroy()))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => server.close(resolve)))
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

/** A TCP server that reads requests and never answers. */
async function silentUpstream(t: Test) {
  const sockets = new Set<Socket>()
  const server = createTcpServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
    socket.resume()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => (sockets.forEach((s) => s.destroy()), server.close(resolve))))
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

async function gatewayOver(t: Test, urls: Record<Owner, string>, overrides: Partial<GatewayConfig> = {}) {
  const iso = await isolate(t)
  const gateway = await buildApp(
    readConfig({
      HOST: '127.0.0.1',
      IDENTITY_URL: urls.identity,
      DIRECTORY_URL: urls.directory,
      AUDIT_URL: urls.audit,
      NATS_URL: iso.NATS_URL,
      NATS_PREFIX: iso.NATS_PREFIX,
      LOG_LEVEL: 'silent',
      TRUSTED_PROXIES: '',
      RATE_LIMIT_MAX: 0,
      CORS_ORIGINS: '*',
      UPSTREAM_TIMEOUT_MS: 30_000,
      CLIENT_HEADERS_TIMEOUT_MS: 10_000,
      CLIENT_REQUEST_TIMEOUT_MS: 30_000,
      CLIENT_KEEP_ALIVE_TIMEOUT_MS: 5_000,
      ...overrides
    })
  )
  t.after(() => gateway.close())
  await gateway.listen({ host: '127.0.0.1', port: 0 })
  return { gateway, port: (gateway.server.address() as { port: number }).port }
}

async function recordingSystem(t: Test, overrides: Partial<GatewayConfig> = {}) {
  const identity = await recordingUpstream(t, 'identity')
  const directory = await recordingUpstream(t, 'directory')
  const audit = await recordingUpstream(t, 'audit')
  const { gateway, port } = await gatewayOver(
    t,
    { identity: identity.url, directory: directory.url, audit: audit.url },
    overrides
  )
  const received = () => [...identity.received, ...directory.received, ...audit.received]
  return { gateway, port, identity, directory, audit, received }
}

interface RawAnswer {
  status: number
  headers: Record<string, string>
  body: string
  closed: boolean
}

/** Sends bytes as they are over a fresh connection; resolves with the first answer (or the close). */
function raw(port: number, request: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request))
    let data = Buffer.alloc(0)
    const done = (closed: boolean) => {
      const text = data.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end === -1) {
        if (closed) resolve({ status: 0, headers: {}, body: '', closed })
        return false
      }
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n')
      const headers = Object.fromEntries(
        lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])
      )
      const length = Number(headers['content-length'] ?? 0)
      const bodyBytes = data.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'))
      if (bodyBytes.length < length && !closed) return false
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: bodyBytes.toString('utf8'), closed })
      socket.destroy()
      return true
    }
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk])
      done(false)
    })
    socket.on('close', () => done(true))
    socket.on('error', (error) => (data.length ? done(true) : reject(error)))
  })
}

const get = (path: string, headers = 'Host: roster.test\r\n') =>
  `GET ${path} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`

function isDrf(t: Test, answer: RawAnswer, label: string) {
  t.match(answer.headers['content-type'] ?? '', /^application\/json/, `${label}: JSON`)
  let body: unknown
  try {
    body = JSON.parse(answer.body)
  } catch {
    t.fail(`${label}: body is not JSON: ${answer.body}`)
    return
  }
  t.type((body as { detail?: unknown }).detail, 'string', `${label}: {"detail": …}`)
}

t.test('the route table declares every public operation once, and the gateway routes by it', async (t) => {
  const keys = PUBLIC_ROUTES.map((r) => `${r.method} ${r.path}`)
  t.equal(new Set(keys).size, keys.length, 'no operation is declared twice')
  t.equal(upstreamOf('/api/users/7/user-logs/'), 'audit')
  t.equal(upstreamOf('/api/groups/3/users/9/'), 'identity')
  t.equal(upstreamOf('/api/occupations/3/'), 'directory')
  t.equal(upstreamOf('/api/users/7/groups'), 'identity', 'the trailing slash is optional, as on the services')
  t.equal(upstreamOf('/api/users/7/internal/'), null)
  t.equal(canonicalPath('/api/users/7/?search=x'), '/api/users/7/')
  t.equal(canonicalPath('/api/users/x\\..\\internal/'), null)
})

// Each was, or is a variant of, a way to reach an internal route through a public prefix. Node's parser
// itself refuses the ones with raw control characters, spaces or non-ASCII bytes (400); the rest are the
// gateway's own 404. None may reach a service.
const PATH_TRICKS: [string, number][] = [
  ['/api/users/x\\..\\..\\..\\internal/users/1', 404],
  ['/api/users/x\\..\\..\\..\\internal\\users\\1\\', 404],
  ['/api\\users\\1\\', 404],
  ['/api/users/x%5c..%5c..%5c..%5cinternal%5cusers%5c1/', 404],
  ['/api/users/x%5C..%5C..%5Cinternal%5Cusers%5C1/', 404],
  ['/api/users/1%2f..%2f..%2finternal%2fusers%2f1/', 404],
  ['/api/users/1%2F..%2F..%2Finternal%2Fusers%2F1/', 404],
  ['/api/users/%2e%2e/%2e%2e/internal/users/1/', 404],
  ['/api/users/%2E%2E/', 404],
  ['/api/users/1/%2e%2e/%2e%2e/%2e%2e/internal/users/1', 404],
  ['/api/users/%252e%252e/%252e%252e/internal/users/1/', 404],
  ['/api/users/1%252f..%252f..%252finternal%252fusers%252f1/', 404],
  ['/api/users/1%255c..%255cinternal/', 404],
  ['/api/users/./1/', 404],
  ['/api/./users/1/', 404],
  ['/api/users/1/.', 404],
  ['/api/users/1/../../internal/users/1', 404],
  ['/api/users/1/..', 404],
  ['/api/users/../users/1/', 404],
  ['/api/users/1/..;/..;/internal/users/1', 404],
  ['//api/users/1/', 404],
  ['/api//users/1/', 404],
  ['/api/users//1/', 404],
  ['/api/users/1//', 404],
  ['/api/users/1;x=1/', 404],
  ['/api/users;/1/', 404],
  ['/api/users/1%3b/', 404],
  ['/api/users/1%09/', 404],
  ['/api/users/1%00/', 404],
  ['/api/users/1%00.json/', 404],
  ['/api/users/%u002e%u002e/', 400], // not percent-encoding at all: Fastify's FST_ERR_BAD_URL
  ['/api/users/%E2%80%A5/', 404], // two dot leader
  ['/api/users/%EF%BC%8E%EF%BC%8E/internal/', 404], // full-width full stops
  ['/api/users/%C0%AE%C0%AE/', 400], // overlong dot: not UTF-8, FST_ERR_BAD_URL
  ['/api/users/1%20/', 404],
  ['/api/users/1#/../../internal/users/1', 404],
  ['/api/users/x\\..\\..\\..\\metrics', 404],
  ['/api/users/x\\..\\..\\..\\ready', 404],
  ['/api/users/x\\..\\..\\..\\docs\\json', 404],
  ['/api/../metrics', 404],
  ['/api/%2e%2e/ready', 404],
  ['/api/users/1/..%2f..%2fdocs%2fjson', 404],
  ['/api/groups/1/users/..%5c..%5c..%5c..%5cinternal%5cgroups%5c1/', 404],
  ['/api/occupations/1/users/..\\..\\..\\..\\internal\\occupations\\1', 404],
  ['/api/users/1\t/', 400],
  ['/api/users/1\u0000/', 400],
  ['/api/users/１/', 400], // raw non-ASCII bytes
  ['/api/users/1\u2024/', 400] // one dot leader, raw
]

t.test('path tricks are answered at the gateway and never reach a service', async (t) => {
  const { port, received } = await recordingSystem(t)
  t.ok(PATH_TRICKS.length >= 30)
  for (const [path, status] of PATH_TRICKS) {
    const answer = await raw(port, Buffer.from(get(path), 'utf8'))
    t.equal(answer.status, status, `${JSON.stringify(path)} → ${status}`)
    isDrf(t, answer, JSON.stringify(path))
  }
  // Every trick was refused without a single byte sent on: the recording upstreams saw nothing at all.
  t.same(received(), [], 'no service received any of them')

  // The canonical spellings of the same routes do get through, to the service that owns them.
  const ok = await raw(port, get('/api/users/1/'))
  t.equal(ok.status, 200)
  t.same(JSON.parse(ok.body), { owner: 'identity', url: '/api/users/1/' })
})

t.test('what is forwarded is the canonical path and a re-encoded query, to the owner', async (t) => {
  const { port, identity, directory, audit } = await recordingSystem(t)
  const cases: [string, Owner, string][] = [
    ['/api/users/7/?search=a%20b&x="<\\>|', 'identity', '/api/users/7/?search=a%20b&x=%22%3C%5C%3E%7C'],
    ['/api/users/7', 'identity', '/api/users/7'],
    [
      '/api/users/7/user-logs/?since=2024-01-01T00:00:00%2B08:00',
      'audit',
      '/api/users/7/user-logs/?since=2024-01-01T00:00:00%2B08:00'
    ],
    ['/api/groups/3/users/', 'identity', '/api/groups/3/users/'],
    ['/api/groups/3/', 'directory', '/api/groups/3/'],
    ['/api/occupations/3/users/', 'identity', '/api/occupations/3/users/'],
    ['/api/black-list/?patient=5', 'audit', '/api/black-list/?patient=5']
  ]
  for (const [path, owner, url] of cases) {
    const answer = await raw(port, get(path))
    t.equal(answer.status, 200, path)
    t.same(
      JSON.parse(answer.body),
      { owner, url: url.split('?')[0] + (url.includes('?') ? url.slice(url.indexOf('?')) : '') },
      path
    )
  }
  t.same(
    [...identity.received, ...directory.received, ...audit.received].map((r) => r.url).sort(),
    cases.map(([, , url]) => url).sort()
  )
  const forwarded = identity.received[0]
  t.equal(forwarded.headers['x-forwarded-for'], '127.0.0.1')
  t.equal(forwarded.headers['x-forwarded-host'], 'roster.test')
  t.equal(forwarded.headers.host, new URL(identity.url).host, "the service's own host, not the client's")
})

t.test('hop-by-hop request headers, and those a Connection header names, stay on the client hop', async (t) => {
  const { port, identity } = await recordingSystem(t)
  const answer = await raw(
    port,
    'GET /api/users/7/ HTTP/1.1\r\nHost: roster.test\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n' +
      'TE: trailers\r\nX-Kept: 2\r\nX-Request-Id: client-chosen.1\r\n\r\n'
  )
  t.equal(answer.status, 200)
  const [forwarded] = identity.received
  t.notOk(forwarded.headers['x-hop'], 'a header the client named in Connection')
  t.notOk(forwarded.headers.te)
  t.not(forwarded.headers['keep-alive'], 'timeout=5')
  t.equal(forwarded.headers['x-kept'], '2', 'others are passed on')
  t.equal(forwarded.headers['x-request-id'], 'client-chosen.1', 'the request id the answer carries too')
  t.equal(answer.headers['x-request-id'], 'client-chosen.1')
})

t.test('a method the table lacks is 405 with Allow, answered by the gateway', async (t) => {
  const { port, received } = await recordingSystem(t)
  const patch = await raw(
    port,
    'PATCH /api/users/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
  )
  t.equal(patch.status, 405)
  t.same(patch.headers.allow.split(', ').sort(), ['GET', 'POST'])
  isDrf(t, patch, 'PATCH /api/users/')
  const del = await raw(port, 'DELETE /api/auth/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(del.status, 405)
  t.equal(del.headers.allow, 'POST')
  // Methods Node parses beyond the five the API uses: 405 too, never a 404 (TRACE is the documents' example).
  for (const method of ['TRACE', 'PROPFIND', 'QUERY', 'M-SEARCH', 'PURGE']) {
    const answer = await raw(port, `${method} /api/users/1/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
    t.equal(answer.status, 405, method)
    t.same(answer.headers.allow?.split(', ').sort(), ['DELETE', 'GET', 'PATCH', 'PUT'], `${method}: Allow`)
    isDrf(t, answer, method)
    t.match(answer.body, method, `${method}: named`)
  }
  t.same(received(), [])
})

t.test("what is refused before routing answers in the API's shape, at the gateway and at a service", async (t) => {
  const { port, received } = await recordingSystem(t)
  const iso = await isolate(t)
  const identity = await buildIdentity(testConfig(iso))
  t.after(() => identity.close())
  await identity.listen({ host: '127.0.0.1', port: 0 })
  const servicePort = (identity.server.address() as { port: number }).port

  for (const [label, target] of [
    ['gateway', port],
    ['identity', servicePort]
  ] as const) {
    const cases: [string, string, number][] = [
      ['invalid percent-encoding in a query', get('/api/groups/?x=%FF'), 400],
      ['invalid percent-encoding in the query of an unknown path', get('/nowhere?x=%FF'), 400],
      ['a truncated UTF-8 sequence in a query', get('/api/users/?search=%E4%B8'), 400],
      ['an encoded lone surrogate in a query', get('/api/users/?search=%ED%A0%80'), 400],
      ['a bad escape in a query', get('/api/users/?search=%zz'), 400],
      ['a Host with a space', get('/api/groups/', 'Host: a b\r\n'), 400],
      ['an empty Host', get('/api/groups/', 'Host:\r\n'), 400],
      ['a Host with a path', get('/api/groups/', 'Host: a/b\r\n'), 400],
      ['two Hosts', get('/api/groups/', 'Host: a\r\nHost: b\r\n'), 400],
      ['the same Host twice', get('/api/groups/', 'Host: a\r\nhost: a\r\n'), 400],
      // Node answers any other expectation with an empty chunked 417 of its own and keeps the connection.
      ['an Expect other than 100-continue', get('/api/groups/', 'Host: x\r\nExpect: bogus\r\n'), 417],
      [
        'an Expect other than 100-continue, with a body',
        'POST /api/auth/ HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}',
        417
      ],
      ['no Host in HTTP/1.1', get('/api/groups/', ''), 400],
      ['invalid percent-encoding in the path', get('/api/users/%FF/'), 400],
      ['a parameter over the length limit', get(`/api/users/${'1'.repeat(300)}/`), 404],
      // Node closes a CONNECT without a word when nothing listens for it; a tunnel is refused in the API's shape.
      ['CONNECT to a host and port', 'CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: 127.0.0.1:5432\r\n\r\n', 405],
      [
        'CONNECT to a path, with bytes for the tunnel',
        'CONNECT /api/users/ HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n',
        405
      ]
    ]
    for (const [name, request, status] of cases) {
      const answer = await raw(target, request)
      t.equal(answer.status, status, `${label}: ${name}`)
      isDrf(t, answer, `${label}: ${name}`)
    }
  }

  const noOrigin = await raw(port, 'OPTIONS /api/users/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(noOrigin.status, 400, 'a preflight without Origin')
  isDrf(t, noOrigin, 'preflight without Origin')
  const preflight = await raw(
    port,
    'OPTIONS /api/users/ HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n'
  )
  t.equal(preflight.status, 204, 'a real preflight is answered by CORS')
  t.equal(preflight.headers['access-control-allow-origin'], '*')
  t.same(received(), [], 'none of it reached a service')
})

t.test('slow headers and slow bodies are cut off and do not hold up others', async (t) => {
  const { port, received } = await recordingSystem(t, {
    CLIENT_HEADERS_TIMEOUT_MS: 1000,
    CLIENT_REQUEST_TIMEOUT_MS: 2000
  })
  const drip = (socket: Socket, piece: string) => {
    const timer = setInterval(() => socket.writable && socket.write(piece), 200)
    socket.on('close', () => clearInterval(timer))
  }
  const slow = (first: string, piece: string) =>
    new Promise<{ answer: string; closed: true }>((resolve) => {
      let answer = ''
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(first)
        drip(socket, piece)
      })
      socket.on('data', (chunk) => (answer += chunk.toString('utf8')))
      socket.on('error', () => undefined)
      socket.on('close', () => resolve({ answer, closed: true }))
    })

  // 20 slowloris connections (a header line that never ends) and 140 slow uploads (more than the
  // gateway's 128 upstream connections), all at once.
  const loris = Array.from({ length: 20 }, () => slow('GET /api/users/ HTTP/1.1\r\nHost: x\r\nX-Slow: ', 'a'))
  const uploads = Array.from({ length: 140 }, () =>
    slow(
      'POST /api/users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"u',
      'a'
    )
  )
  // Meanwhile others are served.
  for (let i = 0; i < 5; i++) {
    const answer = await raw(port, get(`/api/users/${i}/`))
    t.equal(answer.status, 200, 'a read while slow clients are held')
  }
  const ended = await Promise.all([...loris, ...uploads])
  t.ok(
    ended.every((e) => e.closed),
    'every slow connection was closed by the gateway'
  )
  t.ok(
    ended.every((e) => e.answer === '' || /^HTTP\/1\.1 408 /.test(e.answer)),
    'what they were told, if anything, is a 408'
  )
  t.ok(
    ended.some((e) => /^HTTP\/1\.1 408 /.test(e.answer) && e.answer.includes('"detail"')),
    'in the API shape'
  )
  t.same(
    received().filter((r) => r.method !== 'GET'),
    [],
    'no slow upload was forwarded'
  )
})

t.test('130 slow uploads reset by their clients leave the gateway alive and serving', async (t) => {
  const { gateway, port, received } = await recordingSystem(t)
  const sockets: Socket[] = []
  await Promise.all(
    Array.from(
      { length: 130 },
      () =>
        new Promise<void>((resolve) => {
          const socket = connect(port, '127.0.0.1', () => {
            socket.write(
              'POST /api/users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"u',
              () => resolve()
            )
          })
          socket.on('error', () => undefined)
          sockets.push(socket)
        })
    )
  )
  // All 130 are being read by the gateway…
  await eventually(async () => {
    const count = await new Promise<number>((resolve) => gateway.server.getConnections((_e, n) => resolve(n)))
    return count >= 130
  })
  const during = await raw(port, get('/api/users/1/'))
  t.equal(during.status, 200, 'a read is served while they are held')
  // …and then reset, as the attack did.
  for (const socket of sockets) socket.resetAndDestroy()
  await eventually(async () => {
    const count = await new Promise<number>((resolve) => gateway.server.getConnections((_e, n) => resolve(n)))
    return count === 0
  })
  for (let i = 0; i < 3; i++) {
    const after = await raw(port, get('/api/users/1/'))
    t.equal(after.status, 200, 'served after the resets')
  }
  t.same(
    received().filter((r) => r.method === 'POST'),
    [],
    'no partial upload was forwarded'
  )
})

t.test('an upstream that resets, refuses or stalls is a 503/504 in the API shape', async (t) => {
  const identity = await recordingUpstream(t, 'identity')
  const resetting = await resettingUpstream(t)
  const silent = await silentUpstream(t)
  const { port } = await gatewayOver(
    t,
    { identity: identity.url, directory: resetting, audit: silent },
    { UPSTREAM_TIMEOUT_MS: 500 }
  )

  const reset = await raw(port, get('/api/groups/'))
  t.equal(reset.status, 503, 'reset')
  isDrf(t, reset, 'reset')
  const resetPost = await raw(
    port,
    'POST /api/groups/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{"name":"g1"}'
  )
  t.equal(resetPost.status, 503, 'reset while a body is sent')
  const stalled = await raw(port, get('/api/user-logs/'))
  t.equal(stalled.status, 504, 'stalled')
  isDrf(t, stalled, 'stalled')

  // A refused connection: a port nothing listens on any more.
  const closed = await recordingUpstream(t, 'audit')
  const closedServer = Fastify()
  await closedServer.listen({ host: '127.0.0.1', port: 0 })
  const deadUrl = `http://127.0.0.1:${(closedServer.server.address() as { port: number }).port}`
  await closedServer.close()
  const second = await gatewayOver(t, { identity: identity.url, directory: deadUrl, audit: closed.url })
  const refused = await raw(second.port, get('/api/occupations/'))
  t.equal(refused.status, 503, 'refused')
  isDrf(t, refused, 'refused')
  t.equal((await raw(port, get('/api/users/1/'))).status, 200, 'the gateway still serves')
})

t.test('an answer with a status HTTP has no use for is a 503 in the API shape', async (t) => {
  const identity = await recordingUpstream(t, 'identity')
  const server = createTcpServer((socket) =>
    socket.once('data', () => socket.end('HTTP/1.1 799 Odd\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}'))
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => server.close(resolve)))
  const odd = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const { port } = await gatewayOver(t, { identity: identity.url, directory: odd, audit: odd })
  const answer = await raw(port, get('/api/groups/'))
  t.equal(answer.status, 503)
  isDrf(t, answer, 'status 799')
})

t.test('bodies are forwarded whole, byte for byte, with their content type', async (t) => {
  const { port, identity } = await recordingSystem(t)
  const body = JSON.stringify({ username: '张三', password: 'p'.repeat(5000) })
  const answer = await raw(
    port,
    Buffer.from(
      `POST /api/users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      'utf8'
    )
  )
  t.equal(answer.status, 200)
  const [forwarded] = identity.received
  t.equal(forwarded.body, body)
  t.equal(forwarded.headers['content-type'], 'application/json; charset=utf-8')
  t.equal(Number(forwarded.headers['content-length']), Buffer.byteLength(body))
  t.notOk(forwarded.headers['transfer-encoding'])
})

t.test(
  "the route table is exactly the services' public routes, and the merged document exactly the table",
  async (t) => {
    const { buildApp: buildDirectory, testConfig: directoryConfig } = await import('@roster/directory/testing')
    const { buildApp: buildAudit, testConfig: auditConfig } = await import('@roster/audit/testing')
    const iso = await isolate(t)
    const services = {
      identity: await buildIdentity(testConfig(iso)),
      directory: await buildDirectory(directoryConfig(iso)),
      audit: await buildAudit(auditConfig(iso))
    }
    const operations = (doc: { paths?: Record<string, Record<string, unknown>> }, owner?: string) =>
      Object.entries(doc.paths ?? {})
        .filter(([path]) => path.startsWith('/api/'))
        .flatMap(([path, item]) =>
          Object.keys(item)
            .filter((m) => m !== 'parameters')
            .map((m) => `${m.toUpperCase()} ${path}${owner ? ' ' + owner : ''}`)
        )
    const declared = PUBLIC_ROUTES.map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')} ${r.owner}`).sort()
    const served: string[] = []
    const urls = {} as Record<Owner, string>
    const internal = {} as Record<Owner, string>
    for (const [owner, app] of Object.entries(services) as [Owner, FastifyInstance][]) {
      t.after(() => app.close())
      await app.ready()
      served.push(...operations(app.swagger() as any, owner))
      await app.listen({ host: '127.0.0.1', port: 0 })
      urls[owner] = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
      internal[owner] = await listenInternal(app, { host: '127.0.0.1', port: 0 })
    }
    t.same(
      served.sort(),
      declared,
      'every documented /api operation of each service is in the table, with that owner, and no other'
    )

    // The documents are read from these services' internal listeners, never from whatever listens on the default ports.
    const { gateway } = await gatewayOver(t, urls, {
      IDENTITY_INTERNAL_URL: internal.identity,
      DIRECTORY_INTERNAL_URL: internal.directory,
      AUDIT_INTERNAL_URL: internal.audit
    })
    const merged = (await gateway.inject({ method: 'GET', url: '/docs/json' })).json()
    t.same(
      operations(merged).sort(),
      declared.map((d) => d.slice(0, d.lastIndexOf(' '))).sort(),
      'the merged document has exactly the table'
    )
  }
)

t.test('a client that does not read its answer holds no upstream connection', async (t) => {
  const { port, identity } = await recordingSystem(t)
  const reader = connect(port, '127.0.0.1')
  reader.on('error', () => undefined)
  t.after(() => reader.destroy())
  reader.pause()
  reader.write(get('/api/users/?big=16'))
  // The service finishes sending its 16 MiB answer although the client has read none of it: the gateway
  // took it all.
  await eventually(() => identity.finished.includes('/api/users/?big=16'), { timeoutMs: 20_000 })
  const other = await raw(port, get('/api/users/2/'))
  t.equal(other.status, 200, 'others are served meanwhile')
  // And the whole answer does arrive when the client reads at last.
  let bytes = 0
  await new Promise<void>((resolve) => {
    reader.on('data', (chunk: Buffer) => (bytes += chunk.length))
    reader.on('close', () => resolve())
    reader.resume()
  })
  t.ok(bytes > 16 * 1024 * 1024, 'the answer arrives whole')
  t.notOk(
    identity.received.some((r) => r.headers['transfer-encoding']),
    'nothing chunked was sent upstream'
  )
})

t.test("hop-by-hop headers of a service's answer are not passed on", async (t) => {
  const { port } = await recordingSystem(t)
  const answer = await raw(port, 'GET /api/users/3/ HTTP/1.1\r\nHost: x\r\n\r\n')
  t.equal(answer.status, 200)
  // The service keeps idle connections 72 s; this gateway (as configured here) 5 s, and says so itself.
  t.equal(answer.headers['keep-alive'], 'timeout=5', "the gateway's own keep-alive, not the service's")
  t.notOk(answer.headers['transfer-encoding'])
  const head = await raw(port, 'HEAD /api/users/3/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(head.status, 200)
  t.equal(
    head.headers['content-length'],
    String(Buffer.byteLength(answer.body)),
    "HEAD keeps the service's Content-Length"
  )
})

t.test("the kit's server options cut off slow clients on every server, services included", async (t) => {
  // A bare server from the kit's options, with short timeouts so the test is quick.
  const app = Fastify(
    serverOptions('t', 'silent', undefined, { headersMs: 500, requestMs: 1000, keepAliveMs: 1000, idleMs: 5000 })
  )
  await app.register(errorsPlugin)
  app.post('/api/echo/', async (request) => request.body)
  t.after(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const held = (first: string) =>
    new Promise<string>((resolve) => {
      let answer = ''
      const socket = connect(port, '127.0.0.1', () => socket.write(first))
      const timer = setInterval(() => socket.writable && socket.write('a'), 100)
      socket.on('data', (chunk) => (answer += chunk.toString('utf8')))
      socket.on('error', () => undefined)
      socket.on('close', () => (clearInterval(timer), resolve(answer)))
    })
  const [headers, body] = await Promise.all([
    held('GET /api/echo/ HTTP/1.1\r\nHost: x\r\nX-Slow: '),
    held(
      'POST /api/echo/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"a": "'
    )
  ])
  t.match(headers, /^HTTP\/1\.1 408 [^]*"detail":"请求超时。"/, 'slow headers: 408 in the API shape, connection closed')
  t.match(body, /^HTTP\/1\.1 408 /, 'slow body: 408, connection closed')

  // The services are built with the defaults.
  const iso = await isolate(t)
  const identity = await buildIdentity(testConfig(iso))
  t.after(() => identity.close())
  await identity.ready()
  t.equal(identity.server.headersTimeout, DEFAULT_CLIENT_TIMEOUTS.headersMs)
  t.equal(identity.server.requestTimeout, DEFAULT_CLIENT_TIMEOUTS.requestMs)
  t.equal(identity.server.keepAliveTimeout, DEFAULT_CLIENT_TIMEOUTS.keepAliveMs)
})

t.test(
  'bodies held at once have a memory budget: past it a new upload is a quick 503, and the budget comes back',
  async (t) => {
    const { port, received } = await recordingSystem(t, { BODY_BUFFER_BUDGET_BYTES: 3 * 1024 * 1024 })
    // Three uploads that each declare 1 MiB and send a little of it fill the budget…
    const holders = await Promise.all(
      Array.from(
        { length: 3 },
        () =>
          new Promise<Socket>((resolve) => {
            const socket = connect(port, '127.0.0.1', () =>
              socket.write(
                'POST /api/users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{"u',
                () => resolve(socket)
              )
            )
            socket.on('error', () => undefined)
          })
      )
    )
    const body = '{"username":"a"}'
    const post = () =>
      raw(
        port,
        `POST /api/users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`
      )
    // …so the next one is refused at once (the holders are being read: wait until the gateway counts them).
    const refused = await eventually(async () => {
      const answer = await post()
      return answer.status === 503 ? answer : null
    })
    isDrf(t, refused, 'over the budget')
    t.equal(refused.headers['retry-after'], '1')
    const read = await raw(port, get('/api/users/1/'))
    t.equal(read.status, 200, 'requests without a body are not affected')
    // When the holders go, the budget is free again.
    for (const socket of holders) socket.destroy()
    const accepted = await eventually(async () => {
      const answer = await post()
      return answer.status === 200 ? answer : null
    })
    t.equal(accepted.status, 200)
    const posts = received().filter((r) => r.method === 'POST')
    t.ok(posts.length >= 1 && posts.every((r) => r.body === body), 'only whole uploads were forwarded, never a holder')
  }
)

t.test('answers the memory budget has no room for are streamed, whole', async (t) => {
  const { port, identity } = await recordingSystem(t, { BODY_BUFFER_BUDGET_BYTES: 2 * 1024 * 1024 })
  const answer = await raw(port, get('/api/users/?big=4'))
  t.equal(answer.status, 200)
  t.equal(Buffer.byteLength(answer.body), Number(answer.headers['content-length']))
  t.ok(Buffer.byteLength(answer.body) > 4 * 1024 * 1024, 'the 4 MiB answer arrives whole')
  // The service's side of the answer ends on its own socket, a moment after the client has all of it.
  await eventually(async () => identity.finished.includes('/api/users/?big=4'))
  t.pass('the service finished sending it')
  const small = await raw(port, get('/api/users/5/'))
  t.equal(small.status, 200, 'and the budget is still there for others')
})
