import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Transform, type Readable } from 'node:stream'
import replyFrom from '@fastify/reply-from'
import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import {
  ApiError,
  BODY_LIMIT_BYTES,
  NotFoundError,
  PayloadTooLargeError,
  ThrottledError,
  authPlugin,
  errorsPlugin,
  healthPlugin,
  internalListenerPlugin,
  jwksKeyResolver,
  metricsPlugin,
  natsPlugin,
  parseRevokedSessions,
  REVOKED_SESSIONS_HEADER,
  revocationPlugin,
  serverOptions
} from '@roster/service-kit'
import { securityHeadersPlugin } from '@roster/service-kit'
import type { GatewayConfig } from './config.js'
import { upstreamOf, type Upstream } from './routing.js'
import { MergedDocs } from './openapi.js'

// Not passed on: hop-by-hop headers, and `expect` (this server already answered a client's `100-continue`;
// undici refuses to send it, which made every curl upload over 1 KiB a 503).
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'expect']

type LimitedBody = Transform & { tooLarge?: boolean }

/** Passes a body on while counting it; past the limit it fails (and says so), ending the forward. */
function limitBody(payload: Readable): LimitedBody {
  let seen = 0
  const limited: LimitedBody = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length
      if (seen > BODY_LIMIT_BYTES) {
        limited.tooLarge = true
        return callback(new PayloadTooLargeError())
      }
      callback(null, chunk)
    }
  })
  payload.on('error', (error) => limited.destroy(error))
  return payload.pipe(limited)
}

function trustProxy(config: GatewayConfig): string[] | false {
  const list = config.TRUSTED_PROXIES.split(',').map((s) => s.trim()).filter(Boolean)
  return list.length > 0 ? list : false
}

/**
 * The only public entry: verifies tokens (so a revoked or forged token stops here), sets the client
 * address and request id for the services, routes each `/api` path to the service that owns it, rate
 * limits, and serves the merged OpenAPI document with Swagger UI.
 */
export async function buildApp(config: GatewayConfig, options: { logger?: FastifyServerOptions['logger'] } = {}): Promise<FastifyInstance> {
  const upstreams: Record<Upstream, string> = {
    identity: config.IDENTITY_URL,
    directory: config.DIRECTORY_URL,
    audit: config.AUDIT_URL
  }
  const app = Fastify({ ...serverOptions('gateway', config.LOG_LEVEL, options.logger), trustProxy: trustProxy(config) })
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })

  try {
    await app.register(securityHeadersPlugin)
    // `/metrics` and `/ready` answer only on INTERNAL_PORT; `/docs` and `/health` stay public.
    await app.register(internalListenerPlugin)
    await app.register(errorsPlugin, { parseBodies: false })
    await app.register(healthPlugin)
    await app.register(metricsPlugin, { service: 'gateway' })
    await app.register(cors, {
      origin: config.CORS_ORIGINS === '*' ? '*' : config.CORS_ORIGINS.split(',').map((s) => s.trim()),
      exposedHeaders: ['x-total-count', 'link', 'x-request-id', 'retry-after']
    })
    if (config.RATE_LIMIT_MAX > 0) {
      await app.register(rateLimit, {
        max: config.RATE_LIMIT_MAX,
        timeWindow: 60_000,
        errorResponseBuilder: (_request, context) => new ThrottledError(context.ttl / 1000)
      })
    }

    // Each service's own document is internal: read from its internal listener, never from `upstreams`.
    const docs = new MergedDocs(
      { identity: config.IDENTITY_INTERNAL_URL, directory: config.DIRECTORY_INTERNAL_URL, audit: config.AUDIT_INTERNAL_URL },
      app.log
    )
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'Roster API',
          description:
            'The user module of a hospital information system: users and authentication (identity), groups and ' +
            'occupations (directory), login/logout log and patient blacklist (audit). Errors use the Django REST ' +
            'Framework shape; messages are Chinese by default and English with `Accept-Language: en`.',
          version: '0.1.0'
        },
        components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
        security: [{ bearerAuth: [] }],
        tags: [
          { name: 'auth', description: 'log in, refresh, log out; the JWKS that verifies tokens (identity service)' },
          { name: 'users', description: 'registration, profiles, a user’s groups (identity service)' },
          { name: 'groups', description: 'groups with their profiles (directory service) and members (identity service)' },
          { name: 'occupations', description: 'occupations (directory service) and their holders (identity service)' },
          { name: 'user-logs', description: 'login and logout records, written from events (audit service)' },
          { name: 'black-list', description: 'the patient blacklist (audit service)' }
        ]
      }
    })
    await app.register(swaggerUi, {
      routePrefix: '/docs',
      transformSpecification: (spec) => docs.merge(spec as any) as any
    })
    const refresher = setInterval(() => void docs.refresh(), 15_000)
    refresher.unref()
    app.addHook('onReady', async () => {
      await docs.refresh()
    })
    app.addHook('onClose', async () => clearInterval(refresher))

    await app.register(natsPlugin, { url: config.NATS_URL, prefix: config.NATS_PREFIX, name: 'gateway' })
    await app.register(revocationPlugin, { ttlSeconds: config.REVOCATION_TTL_SECONDS })
    await app.register(authPlugin, { resolveKey: jwksKeyResolver(config.IDENTITY_URL) })
    await app.register(replyFrom, {
      undici: { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 },
      http: undefined,
      disableRequestLogging: true
    } as any)
    await app.register(async function proxy(scope) {
      // Bodies pass through as streams: the service that owns the path parses them. The size limit is
      // also kept here, before and while forwarding: a service that refuses a large body closes the
      // connection in the middle of the upload, which would reach the client as a 503.
      scope.removeAllContentTypeParsers()
      // The rest of a refused body is never read: the connection is closed after the answer instead of
      // being kept alive with an upload still coming.
      scope.addHook('onSend', async (_request, reply) => {
        if (reply.statusCode === 413) reply.header('connection', 'close')
      })
      scope.addContentTypeParser('*', (request, payload, done) => {
        if (Number(request.headers['content-length'] ?? 0) > BODY_LIMIT_BYTES) return done(new PayloadTooLargeError(), undefined)
        done(null, limitBody(payload))
      })
      scope.all(
        '/api/*',
        { config: { access: 'public' }, schema: { hide: true } },
        async function forward(request, reply) {
          const path = request.url.split('?')[0]
          const upstream = upstreamOf(path)
          if (!upstream) throw new NotFoundError()
          return reply.from(upstreams[upstream] + request.url, {
            timeout: config.UPSTREAM_TIMEOUT_MS,
            rewriteRequestHeaders: (_req, headers) => {
              const out: Record<string, string | string[] | undefined> = { ...headers }
              for (const name of HOP_BY_HOP) delete out[name]
              out['x-forwarded-for'] = request.ip
              out['x-forwarded-host'] = request.host
              out['x-forwarded-proto'] = request.protocol
              out['x-request-id'] = request.id
              return out as any
            },
            // Sessions an answer of identity ended are refused here before the client has the answer;
            // the header is internal and never passed on.
            rewriteHeaders: (headers) => {
              if (headers[REVOKED_SESSIONS_HEADER] === undefined) return headers
              if (upstream === 'identity') {
                for (const r of parseRevokedSessions(headers[REVOKED_SESSIONS_HEADER])) app.revocations.remember(r.sid, r.exp)
              }
              const { [REVOKED_SESSIONS_HEADER]: _internal, ...rest } = headers
              return rest
            },
            onError: (reply, { error }) => {
              if ((request.body as LimitedBody | undefined)?.tooLarge) {
                reply.code(413).send(new PayloadTooLargeError().body(request.lang))
                return
              }
              request.log.error({ err: error, upstream }, 'upstream failed')
              reply.code(503).send({ detail: new ApiError(503, 'service_unavailable').body(request.lang).detail })
            }
          })
        }
      )
    })
  } catch (error) {
    await app.close().catch(() => undefined)
    throw error
  }
  return app
}
