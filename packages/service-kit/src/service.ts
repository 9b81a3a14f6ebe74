import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyServerOptions } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { EntitySchema, MigrationObject } from '@mikro-orm/core'
import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FieldCheck, StreamKey } from '@roster/contracts'
import { FieldErrorsSchema, DetailSchema } from '@roster/contracts'
import type { BaseConfig } from './config.js'
import { kitMigrations } from './kit-migration.js'
import { BODY_LIMIT_BYTES } from './errors.js'
import { message } from './messages.js'
import { validatorCompiler } from './validation.js'
import { loggerOptions } from './logging.js'
import { assertTimeZone } from './time.js'
import { errorsPlugin } from './plugins/errors.js'
import type { ConstraintTable } from './sql.js'
import { securityHeadersPlugin } from './plugins/headers.js'
import { healthPlugin } from './plugins/health.js'
import { internalListenerPlugin } from './internal.js'
import { metricsPlugin } from './plugins/metrics.js'
import { ormPlugin } from './plugins/orm.js'
import { natsPlugin } from './plugins/nats.js'
import { outboxPlugin } from './plugins/outbox.js'
import { consumersPlugin, type ConsumerSpec } from './plugins/consumers.js'
import { revocationPlugin } from './plugins/revocation.js'
import { authPlugin, type KeyResolver } from './plugins/auth.js'
import { swaggerPlugin } from './plugins/swagger.js'
import { opsMetricsPlugin } from './plugins/ops-metrics.js'
import { jwksKeyResolver } from './keys.js'

export type ServiceApp = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>

export interface ServiceDefinition {
  name: string
  description: string
  config: BaseConfig
  entities: EntitySchema<any, any>[]
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
  /** Shared schemas (with `$id`) that routes refer to. */
  schemas?: { $id?: string }[]
  /** Runs after the kit's plugins and before the routes (the service's own decorators). */
  setup?: (app: ServiceApp) => Promise<void>
  /** The service's routes; registered under the root, paths start with `/api/`. */
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
  const text = JSON.stringify(body)
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`
  )
}

function malformed(reason: string) {
  const text = message('malformed_request', 'zh', { reason })
  return { detail: text, non_field_errors: [text] }
}

/** Server options shared by every service and the gateway. */
export function serverOptions(name: string, logLevel: string, logger?: FastifyServerOptions['logger']): FastifyServerOptions {
  return {
    logger: loggerOptions(name, logLevel, logger),
    // `X-Request-Id` from the caller (the gateway) is reused, so one id names a request in every log.
    genReqId: (req) => {
      const incoming = req.headers['x-request-id']
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID()
    },
    requestIdHeader: false,
    clientErrorHandler,
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 200 },
    return503OnClosing: true,
    forceCloseConnections: 'idle'
  }
}

/**
 * Builds a service from the kit's plugins in a fixed order: internal listener, errors, health, metrics,
 * docs, ORM, NATS, outbox, revocation, auth, consumers, then the service's own setup and routes. Never
 * listens (`run`/`listen` start both listeners; tests use `inject`/`injectInternal`).
 */
export async function buildService(def: ServiceDefinition): Promise<ServiceApp> {
  const { config } = def
  assertTimeZone(config.ROSTER_TIME_ZONE)
  const schema = config.DB_SCHEMA || def.name
  const app = Fastify({
    ...serverOptions(def.name, config.LOG_LEVEL, def.logger),
    trustProxy: config.TRUST_PROXY.split(',').map((s) => s.trim()).filter(Boolean)
  }).withTypeProvider<TypeBoxTypeProvider>()
  app.setValidatorCompiler(validatorCompiler(def.checks ?? {}))

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })

  try {
    await app.register(securityHeadersPlugin)
    // `/internal/*`, `/metrics`, `/ready` and this service's own `/docs` answer only on INTERNAL_PORT.
    await app.register(internalListenerPlugin, { internalPrefixes: ['/docs'] })
    await app.register(errorsPlugin, { constraints: def.constraints })
    await app.register(healthPlugin)
    await app.register(metricsPlugin, { service: def.name })
    await app.register(swaggerPlugin, { service: def.name, description: def.description })
    app.addSchema(DetailSchema)
    app.addSchema(FieldErrorsSchema)
    for (const s of def.schemas ?? []) app.addSchema(s)
    await app.register(ormPlugin, {
      databaseUrl: config.DATABASE_URL,
      schema,
      entities: def.entities,
      migrations: [...kitMigrations, ...def.migrations],
      poolMax: config.DB_POOL_MAX,
      migrate: config.MIGRATE_ON_START
    })
    await app.register(natsPlugin, { url: config.NATS_URL, prefix: config.NATS_PREFIX, name: def.name, streams: def.produces })
    await app.register(outboxPlugin, { pollMs: config.OUTBOX_POLL_MS })
    await app.register(revocationPlugin, { ttlSeconds: config.REVOCATION_TTL_SECONDS })
    if (def.setup) await def.setup(app)
    await app.register(authPlugin, { resolveKey: def.resolveKey ?? jwksKeyResolver(config.IDENTITY_URL) })
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
