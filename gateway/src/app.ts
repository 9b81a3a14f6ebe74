import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { ServerResponse } from 'node:http'
import replyFrom from '@fastify/reply-from'
import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import {
  ApiError,
  BODY_LIMIT_BYTES,
  NotFoundError,
  ThrottledError,
  authPlugin,
  errorsPlugin,
  healthPlugin,
  internalListenerPlugin,
  jwksKeyResolver,
  metricsPlugin,
  message,
  natsPlugin,
  parseRevokedSessions,
  REVOKED_SESSIONS_HEADER,
  negotiateLanguage,
  refuseMalformed,
  revocationPlugin,
  serverOptions
} from '@roster/service-kit'
import { securityHeadersPlugin } from '@roster/service-kit'
import type { GatewayConfig } from './config.js'
import { canonicalPath, forwardedQuery, proxyRoutes, type Upstream } from './routing.js'
import { MergedDocs } from './openapi.js'

// Not passed on: hop-by-hop headers, and `expect` (this server already answered a client's `100-continue`;
// undici refuses to send it, which made every curl upload over 1 KiB a 503).
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'expect']

/** The largest answer a service may give (a page of the longest list is far smaller). */
const MAX_ANSWER_BYTES = 32 * 1024 * 1024

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
  const app = Fastify({
    ...serverOptions('gateway', config.LOG_LEVEL, options.logger, {
      headersMs: config.CLIENT_HEADERS_TIMEOUT_MS,
      requestMs: config.CLIENT_REQUEST_TIMEOUT_MS,
      keepAliveMs: config.CLIENT_KEEP_ALIVE_TIMEOUT_MS,
      idleMs: Math.max(120_000, 2 * config.UPSTREAM_TIMEOUT_MS)
    }),
    trustProxy: trustProxy(config)
  })
  app.addHook('onRequest', refuseMalformed)
  // Only a canonical path is forwarded (or answered 405): the router has matched a public template after
  // ignoring duplicate and trailing slashes and decoding parameters; the raw path must also be that
  // template's canonical spelling, or the answer is this gateway's own 404.
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.url?.startsWith('/api/') && canonicalPath(request.raw.url ?? '') === null) throw new NotFoundError()
  })
  // A preflight must name its origin and method; @fastify/cors answers one without them in text/plain.
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'OPTIONS' || (request.headers.origin && request.headers['access-control-request-method'])) return undefined
    const text = message('malformed_request', negotiateLanguage(request.headers['accept-language']), {
      reason: 'a CORS preflight needs Origin and Access-Control-Request-Method'
    })
    return reply.code(400).send({ detail: text, non_field_errors: [text] })
  })
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
      // A body is read whole (up to the 1 MiB limit; more is a 413, declared or streamed) before anything
      // is forwarded, so a slow upload holds only its own client connection and never an upstream one;
      // the service that owns the path parses it.
      scope.removeAllContentTypeParsers()
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT_BYTES }, (_request, body, done) => done(null, body))
      // Bodies being read, and answers being sent, are held in memory: together they may take
      // BODY_BUFFER_BUDGET_BYTES (a body counts its declared length, or the whole 1 MiB limit when chunked,
      // an answer its length) until the answer is finished or the connection closed. Past that a new upload
      // is a quick 503 and an answer is streamed, instead of many slow clients taking the process's memory.
      let buffering = 0
      const hold = (response: ServerResponse, bytes: number) => {
        buffering += bytes
        if (response.closed) buffering -= bytes
        else response.once('close', () => (buffering -= bytes))
      }
      scope.addHook('preParsing', async (request, reply, payload) => {
        const length = request.headers['content-length']
        if (length === undefined && request.headers['transfer-encoding'] === undefined) return payload
        const declared = Number(length)
        const reserve = length !== undefined && Number.isFinite(declared) ? Math.min(declared, BODY_LIMIT_BYTES) : BODY_LIMIT_BYTES
        if (reserve <= 0) return payload
        if (buffering + reserve > config.BODY_BUFFER_BUDGET_BYTES) {
          reply.header('connection', 'close')
          throw new ApiError(503, 'service_unavailable', {}, undefined, { 'retry-after': '1' })
        }
        hold(reply.raw, reserve)
        return payload
      })
      // A client that resets in the middle of its upload has gone: nothing failed here, nobody to answer.
      scope.setErrorHandler(function clientGone(error, request, reply) {
        if (!request.raw.socket || request.raw.socket.destroyed) {
          request.log.info({ code: (error as { code?: string }).code }, 'client went away during its request')
          return reply.code(400).send()
        }
        throw error
      })
      // The rest of a refused body is never read: the connection is closed after the answer instead of
      // being kept alive with an upload still coming.
      scope.addHook('onSend', async (_request, reply) => {
        if (reply.statusCode === 413) reply.header('connection', 'close')
      })
      for (const route of proxyRoutes()) {
        const upstream = route.owner
        scope.route({
          method: route.methods,
          url: route.path,
          config: { access: 'public' },
          schema: { hide: true },
          handler: async function forward(request, reply) {
            const url = request.raw.url ?? ''
            const path = canonicalPath(url)
            if (path === null) throw new NotFoundError()
            const body = request.body
            return reply.from(upstreams[upstream] + path, {
              timeout: config.UPSTREAM_TIMEOUT_MS,
              // reply-from would repeat a GET that a service answers 503 up to ten times: a service in
              // trouble would get ten times the load. Its 503 is passed on as it is.
              retryDelay: () => null,
              queryString: () => forwardedQuery(url),
              ...(Buffer.isBuffer(body)
                ? { body, contentType: request.headers['content-type'] ?? 'application/octet-stream' }
                : {}),
              rewriteRequestHeaders: (_req, headers) => {
                const out: Record<string, string | string[] | number | undefined> = { ...headers }
                for (const name of HOP_BY_HOP) delete out[name]
                out['x-forwarded-for'] = request.ip
                out['x-forwarded-host'] = request.host
                out['x-forwarded-proto'] = request.protocol
                out['x-request-id'] = request.id
                return out as any
              },
              // The answer is read whole before it is sent on, so a client that reads slowly (or not at all)
              // holds only its own connection, never one to a service. Hop-by-hop headers stay on this hop.
              rewriteHeaders: (headers) => {
                const out: Record<string, unknown> = { ...headers }
                for (const name of HOP_BY_HOP) delete out[name]
                // Sessions an answer of identity ended are refused here before the client has the answer;
                // the header is internal and never passed on.
                const revoked = out[REVOKED_SESSIONS_HEADER]
                if (revoked !== undefined) {
                  if (upstream === 'identity') {
                    for (const r of parseRevokedSessions(revoked as string)) app.revocations.remember(r.sid, r.exp)
                  }
                  delete out[REVOKED_SESSIONS_HEADER]
                }
                return out as any
              },
              onResponse: (_request, reply, res) => {
                // HEAD has no body to hold anything up, and the service's Content-Length must stand. An answer
                // of unknown length, or one the memory budget has no room for, is streamed as it comes.
                const length = Number((res as unknown as { headers: Record<string, string | undefined> }).headers['content-length'])
                if (request.method === 'HEAD' || !Number.isFinite(length) || length > MAX_ANSWER_BYTES || buffering + length > config.BODY_BUFFER_BUDGET_BYTES) {
                  return void reply.send(res.stream)
                }
                hold(reply.raw as ServerResponse, length)
                const chunks: Buffer[] = []
                let size = 0
                res.stream.on('data', (chunk: Buffer) => {
                  size += chunk.length
                  if (size > MAX_ANSWER_BYTES) res.stream.destroy(new Error(`an answer over ${MAX_ANSWER_BYTES} bytes`))
                  else chunks.push(chunk)
                })
                res.stream.on('end', () => void reply.send(Buffer.concat(chunks)))
                res.stream.on('error', (error: Error) => {
                  request.log.error({ err: error, upstream }, 'upstream answer failed')
                  if (!reply.sent) void reply.code(503).send({ detail: new ApiError(503, 'service_unavailable').body(request.lang).detail })
                })
              },
              // Whatever the upstream did (refused, reset, timed out, answered garbage) the client gets an
              // answer in the API's shape: 504 when it took too long, 503 otherwise.
              onError: (reply, { error }) => {
                const timedOut = (error as { statusCode?: number }).statusCode === 504
                request.log.error({ err: error, upstream }, 'upstream failed')
                const status = timedOut ? 504 : 503
                reply.code(status).send({ detail: new ApiError(status, timedOut ? 'gateway_timeout' : 'service_unavailable').body(request.lang).detail })
              }
            })
          }
        })
      }
    })
    app.registerMethodNotAllowed()
  } catch (error) {
    await app.close().catch(() => undefined)
    throw error
  }
  return app
}
