import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions
} from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { MigrationObject } from '@mikro-orm/core'
import { randomUUID } from 'node:crypto'
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { FieldCheck, StreamKey } from '@roster/contracts'
import { FieldErrorsSchema, DetailSchema } from '@roster/contracts'
import type { BaseConfig } from './config.js'
import { kitEntities, kitMigrations } from './kit-migration.js'
import { routeOwnershipPlugin } from './plugins/route-ownership.js'
import { BODY_LIMIT_BYTES } from './errors.js'
import { message, negotiateLanguage, type Lang } from './messages.js'
import { validatorCompiler } from './validation.js'
import { AccessLogController, loggerOptions, type AccessLogLevel } from './logging.js'
import { assertTimeZone } from './time.js'
import { errorsPlugin } from './plugins/errors.js'
import { inputPlugin } from './plugins/input.js'
import type { ConstraintTable } from './sql.js'
import { securityHeadersPlugin } from './plugins/headers.js'
import { healthPlugin } from './plugins/health.js'
import { internalListenerPlugin } from './internal.js'
import { metricsPlugin } from './plugins/metrics.js'
import { ormPlugin, type AnyEntitySchema } from './plugins/orm.js'
import { natsPlugin } from './plugins/nats.js'
import { outboxPlugin } from './plugins/outbox.js'
import { consumersPlugin, type ConsumerSpec } from './plugins/consumers.js'
import { revocationPlugin } from './plugins/revocation.js'
import { authPlugin, type KeyResolver, type SigningKeyOptions } from './plugins/auth.js'
import { swaggerPlugin } from './plugins/swagger.js'
import { opsMetricsPlugin } from './plugins/ops-metrics.js'
import { jwksKeyResolver } from './keys.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- server, request and reply types stay Fastify's defaults; only the type provider is fixed
export type ServiceApp = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>

export interface ServiceDefinition {
  name: string
  description: string
  config: BaseConfig
  entities: AnyEntitySchema[]
  migrations: MigrationObject[]
  /** Streams this service publishes to (created if missing). */
  produces?: StreamKey[]
  consumers?: ConsumerSpec[]
  /** What each of the service's unique and foreign-key constraints means to a client when a race violates it. */
  constraints?: ConstraintTable
  /** Field checks for `x-check` in this service's schemas. */
  checks?: Record<string, FieldCheck>
  /** How tokens are verified; defaults to the identity service's JWKS. */
  resolveKey?: KeyResolver
  /** The key `app.jwt.sign` signs tokens with (identity only). */
  signingKey?: SigningKeyOptions
  /** Shared schemas (with `$id`) that routes refer to. */
  schemas?: { $id?: string }[]
  /** Runs after the kit's plugins and before the routes (the service's own decorators). */
  setup?: (app: ServiceApp) => Promise<void>
  /** The service's routes; registered under the root, paths start with `/api/`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each service's route plugin has its own options type
  routes: FastifyPluginAsync<any>[]
  logger?: FastifyServerOptions['logger']
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * A request Node's HTTP parser refuses (raw non-ASCII bytes in the URL, as curl sends `?search=张`, bad
 * framing, oversized headers, a stalled upload) never reaches Fastify: the answer is written here, in the
 * API's error shape (Chinese, the default: the headers were not read), instead of Fastify's own body.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const [status, body] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, { detail: message('headers_too_large', 'zh') }]
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, { detail: message('request_timeout', 'zh') }]
        : [400, malformed(error.message.replace(/^Parse Error: /, ''))]
  answerRaw(socket, status, body)
}

/**
 * A `CONNECT` request (a tunnel, as asked of a forward proxy): Node hands it to a `connect` listener or, with
 * none, closes the connection without a word. Roster tunnels nothing: 405 in the API's shape, and the
 * connection closed (whatever follows the request is the tunnel's, never a request of its own).
 */
export function refuseConnect(_request: IncomingMessage, socket: Duplex): void {
  socket.on('error', () => socket.destroy())
  answerRaw(socket, 405, { detail: message('method_not_allowed', 'zh', { method: 'CONNECT' }) })
}

/**
 * A request whose `Expect` is anything but `100-continue` (RFC 9110 §10.1.1): Node answers `417` with an
 * empty chunked body and keeps the connection. Here the `417` is in the API's shape, in the language the
 * request asks for, and the connection is closed (its body, if one follows, is never read).
 */
export function refuseExpectation(request: IncomingMessage, response: ServerResponse): void {
  const text = JSON.stringify({
    detail: message('expectation_failed', negotiateLanguage(request.headers['accept-language']))
  })
  response.writeHead(417, rawAnswerHeaders(text))
  response.end(text)
}

/** The headers of an answer the kit writes outside Fastify: JSON, never cached or sniffed, the connection closed. */
function rawAnswerHeaders(text: string): Record<string, string> {
  return {
    connection: 'close',
    'content-type': 'application/json; charset=utf-8',
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-store',
    'content-length': String(Buffer.byteLength(text))
  }
}

/** An answer in the API's error shape written straight to the socket, which is then closed. */
function answerRaw(socket: Duplex, status: number, body: object): void {
  const text = JSON.stringify(body)
  const headers = Object.entries(rawAnswerHeaders(text))
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${headers}\r\n${text}`)
}

function malformed(reason: string, lang: Lang = 'zh') {
  const text = message('malformed_request', lang, { reason })
  return { detail: text, non_field_errors: [text] }
}

/** How long a client may take; every Roster server cuts off slow headers, slow bodies and idle sockets. */
export interface ClientTimeouts {
  /** Until the request's headers are complete (slowloris). */
  headersMs: number
  /** Until the whole request, body included, is received. */
  requestMs: number
  /** An idle keep-alive connection between requests. */
  keepAliveMs: number
  /** A socket with no traffic at all (also while an answer is being prepared). */
  idleMs: number
}

export const DEFAULT_CLIENT_TIMEOUTS: ClientTimeouts = {
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: 72_000,
  idleMs: 120_000
}

/**
 * A query must be valid percent-encoded UTF-8 (`%FF`, `%E4%B8`, `%zz` and encoded lone surrogates are not);
 * Fastify's parser lets such a query through and whatever decodes it later throws, as a 500.
 */
function wellFormedQuery(url: string): boolean {
  const start = url.indexOf('?')
  if (start === -1 || !url.includes('%', start)) return true
  try {
    decodeURIComponent(url.slice(start + 1))
    return true
  } catch {
    return false
  }
}

/** Whether the request names more than one Host (RFC 9112 §3.2: a 400); Node keeps the first and drops the rest. */
function hostRepeated(rawHeaders: string[]): boolean {
  let seen = false
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name.length !== 4 || name.toLowerCase() !== 'host') continue
    if (seen) return true
    seen = true
  }
  return false
}

// RFC 9110 Host: a reg-name, an IPv4 address or a bracketed IPv6 literal, and an optional port.
const HOST = /^(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?$/

/**
 * `onRequest`, first of all: a request with a malformed, repeated or (in HTTP/1.1) missing `Host`, or a
 * query that is not valid percent-encoded UTF-8, is a `400` in the API's shape before anything reads them.
 * A callback hook (it runs on every request: no promise for the usual case, where nothing is wrong).
 */
export function refuseMalformed(request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void {
  const host = request.headers.host
  let reason: string | null = null
  if (host === undefined ? request.raw.httpVersion === '1.1' : !HOST.test(host) || hostRepeated(request.raw.rawHeaders))
    reason = 'invalid Host header'
  else if (!wellFormedQuery(request.raw.url ?? '')) reason = 'invalid percent-encoding in the query'
  if (reason === null) return done()
  request.log.info({ status: 400, reason }, 'request refused')
  void reply
    .code(400)
    .header('connection', 'close')
    .send(malformed(reason, negotiateLanguage(request.headers['accept-language'])))
}

/** What Fastify refuses before routing (`FST_ERR_BAD_URL` for `/api/users/%FF/`, …), in the API's shape. */
function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const lang = negotiateLanguage(request.headers['accept-language'])
  request.log.info({ code: error.code }, 'request refused before routing')
  void reply.header('x-request-id', request.id)
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    void reply.code(404).send({ detail: message('not_found', lang) })
    return
  }
  const reason =
    error.code === 'FST_ERR_BAD_URL' ? 'invalid percent-encoding in the path' : 'the request could not be routed'
  void reply.code(400).send(malformed(reason, lang))
}

/** Server options shared by every service and the gateway. */
export function serverOptions(
  name: string,
  logLevel: string,
  logger?: FastifyServerOptions['logger'],
  timeouts: ClientTimeouts = DEFAULT_CLIENT_TIMEOUTS,
  accessLog: AccessLogLevel = 'info'
): FastifyServerOptions {
  return {
    logger: loggerOptions(name, logLevel, logger),
    logController: new AccessLogController(accessLog),
    // `X-Request-Id` from the caller (the gateway) is reused, so one id names a request in every log.
    genReqId: (req) => {
      const incoming = req.headers['x-request-id']
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID()
    },
    requestIdHeader: false,
    clientErrorHandler,
    frameworkErrors,
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 200 },
    // Slow clients are cut off (Node answers 408 through `clientErrorHandler`): headers, then the whole
    // request, checked every second rather than Node's default 30 s; a missing Host is `refuseMalformed`'s.
    http: { headersTimeout: timeouts.headersMs, connectionsCheckingInterval: 1000, requireHostHeader: false },
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    connectionTimeout: timeouts.idleMs,
    return503OnClosing: true,
    forceCloseConnections: 'idle'
  } as FastifyServerOptions
}

/** What `baseServer` needs to know about the process it builds. */
export interface BaseServerOptions {
  /** `service` in every log line; the metrics' `service` label. */
  name: string
  logLevel: string
  /** Tests pass a `stream` (or `false`); the kit's redaction and serializers stay. */
  logger?: FastifyServerOptions['logger']
  timeouts?: ClientTimeouts
  /** Addresses/CIDRs of proxies whose `X-Forwarded-For` is believed. */
  trustProxy: string[]
  /** The level of the one access-log line a request gets (see `AccessLogController`). */
  accessLog: AccessLogLevel
  /** Paths besides the internal routes that answer only on the internal listener (a service's `/docs`). */
  internalPrefixes?: string[]
  /** false: bodies are not parsed (the gateway passes them on as they are). */
  parseBodies?: boolean
  constraints?: ConstraintTable
}

/**
 * The server every Roster process (the three services and the gateway) is built on: the kit's server
 * options (logger, request ids, client timeouts, router options, framework errors in the API's shape),
 * the malformed-request check, security headers and `X-Request-Id` on every answer, the internal
 * listener's routes, DRF-shaped errors, `/health` and `/metrics`. Closed again if a plugin fails.
 */
export async function baseServer(options: BaseServerOptions): Promise<ServiceApp> {
  const app = Fastify({
    ...serverOptions(options.name, options.logLevel, options.logger, options.timeouts, options.accessLog),
    trustProxy: options.trustProxy.length > 0 ? options.trustProxy : false
  }).withTypeProvider<TypeBoxTypeProvider>()
  app.addHook('onRequest', refuseMalformed)
  app.server.on('connect', refuseConnect)
  app.server.on('checkExpectation', refuseExpectation)
  try {
    // First, so that answers a later hook refuses carry the headers too.
    await app.register(securityHeadersPlugin)
    await app.register(internalListenerPlugin, { internalPrefixes: options.internalPrefixes ?? [] })
    await app.register(errorsPlugin, { constraints: options.constraints })
    if (options.parseBodies !== false) await app.register(inputPlugin)
    await app.register(healthPlugin)
    await app.register(metricsPlugin, { service: options.name })
  } catch (error) {
    await app.close().catch(() => undefined)
    throw error
  }
  return app
}

/**
 * Builds a service from the kit's plugins in a fixed order: the base server (internal listener, errors,
 * health, metrics), docs, ORM, NATS, outbox, revocation, auth, consumers, then the service's own setup and
 * routes. Never listens (`run`/`listen` start both listeners; tests use `inject`/`injectInternal`).
 */
export async function buildService(def: ServiceDefinition): Promise<ServiceApp> {
  const { config } = def
  assertTimeZone(config.ROSTER_TIME_ZONE)
  const schema = config.DB_SCHEMA || def.name
  const app = await baseServer({
    name: def.name,
    logLevel: config.LOG_LEVEL,
    logger: def.logger,
    trustProxy: config.TRUST_PROXY.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    // The gateway writes the line of every public request; a service's own is at `debug` (errors always).
    accessLog: 'debug',
    internalPrefixes: ['/docs'],
    constraints: def.constraints
  })
  app.setValidatorCompiler(validatorCompiler(def.checks ?? {}))
  try {
    await app.register(routeOwnershipPlugin, { service: def.name })
    await app.register(swaggerPlugin, { service: def.name, description: def.description })
    app.addSchema(DetailSchema)
    app.addSchema(FieldErrorsSchema)
    for (const s of def.schemas ?? []) app.addSchema(s)
    await app.register(ormPlugin, {
      databaseUrl: config.DATABASE_URL,
      schema,
      entities: [...kitEntities, ...def.entities],
      migrations: [...kitMigrations, ...def.migrations],
      poolMax: config.DB_POOL_MAX,
      migrate: config.MIGRATE_ON_START
    })
    await app.register(natsPlugin, {
      url: config.NATS_URL,
      prefix: config.NATS_PREFIX,
      name: def.name,
      streams: def.produces
    })
    await app.register(outboxPlugin, { pollMs: config.OUTBOX_POLL_MS })
    await app.register(revocationPlugin, { ttlSeconds: config.REVOCATION_TTL_SECONDS })
    const resolveKey = def.resolveKey ?? jwksKeyResolver(config.IDENTITY_URL)
    await app.register(authPlugin, { resolveKey, signingKey: def.signingKey })
    if (def.setup) await def.setup(app)
    await app.register(consumersPlugin, { specs: def.consumers ?? [], maxDeliver: config.CONSUMER_MAX_DELIVER })
    await app.register(opsMetricsPlugin, { consumers: def.consumers ?? [] })
    for (const routes of def.routes) await app.register(routes)
    app.registerMethodNotAllowed()
  } catch (error) {
    await app.close().catch(() => undefined)
    throw error
  }
  return app
}
