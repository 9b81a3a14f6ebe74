import type { FastifyInstance, FastifyServerOptions } from 'fastify'
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
  baseServer,
  jwksKeyResolver,
  message,
  natsPlugin,
  parseRevokedSessions,
  negotiateLanguage,
  revocationPlugin
} from '@roster/service-kit'
import type { GatewayConfig } from './config.js'
import { Forwarder } from './forward.js'
import { canonicalPath, forwardedQuery, proxyRoutes } from './routing.js'
import { MergedDocs } from './openapi.js'
import { asyncApiDocument } from '@roster/contracts'
import { DOCS_UI_CONFIG } from './docs-page.js'

/**
 * The only public entry: verifies tokens (so a revoked or forged token stops here), sets the client
 * address and request id for the services, routes each `/api` path to the service that owns it, rate
 * limits, and serves the merged OpenAPI document with Swagger UI.
 */
export async function buildApp(
  config: GatewayConfig,
  options: { logger?: FastifyServerOptions['logger'] } = {}
): Promise<FastifyInstance> {
  const app = await baseServer({
    name: 'gateway',
    logLevel: config.LOG_LEVEL,
    logger: options.logger,
    timeouts: {
      headersMs: config.CLIENT_HEADERS_TIMEOUT_MS,
      requestMs: config.CLIENT_REQUEST_TIMEOUT_MS,
      keepAliveMs: config.CLIENT_KEEP_ALIVE_TIMEOUT_MS,
      idleMs: Math.max(120_000, 2 * config.UPSTREAM_TIMEOUT_MS)
    },
    trustProxy: config.TRUSTED_PROXIES.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    // The public entry writes the one access-log line of every request (the services' are at `debug`).
    accessLog: 'info',
    parseBodies: false
  })
  // Only a canonical path is forwarded (or answered 405): the router has matched a public template after
  // ignoring duplicate and trailing slashes and decoding parameters; the raw path must also be that
  // template's canonical spelling, or the answer is this gateway's own 404. A preflight must name its origin
  // and method; @fastify/cors answers one without them in text/plain. One callback hook for both: it runs
  // on every request, and the usual request passes without a promise.
  app.addHook('onRequest', (request, reply, done) => {
    if (request.routeOptions.url?.startsWith('/api/') && canonicalPath(request.raw.url ?? '') === null)
      return done(new NotFoundError())
    if (request.method !== 'OPTIONS' || (request.headers.origin && request.headers['access-control-request-method']))
      return done()
    const text = message('malformed_request', negotiateLanguage(request.headers['accept-language']), {
      reason: 'a CORS preflight needs Origin and Access-Control-Request-Method'
    })
    void reply.code(400).send({ detail: text, non_field_errors: [text] })
  })

  try {
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
      {
        identity: config.IDENTITY_INTERNAL_URL,
        directory: config.DIRECTORY_INTERNAL_URL,
        audit: config.AUDIT_INTERNAL_URL
      },
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
            'Framework shape; messages are Chinese by default and English with `Accept-Language: en`. ' +
            'The events the services publish on NATS JetStream are documented in AsyncAPI: [/docs/asyncapi.json](/docs/asyncapi.json).',
          version: '0.1.0',
          // The repository declares no licence: `UNLICENSED` is npm's word for "not licensed for use by others".
          contact: { name: 'Roster maintainers' },
          license: { name: 'UNLICENSED', url: 'https://docs.npmjs.com/cli/v10/configuring-npm/package-json#license' }
        },
        // Relative: "Try it out" calls the gateway that served the page, whatever its address.
        servers: [{ url: '/', description: 'this gateway' }],
        components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
        security: [{ bearerAuth: [] }],
        tags: [
          { name: 'auth', description: 'log in, refresh, log out; the JWKS that verifies tokens (identity service)' },
          { name: 'users', description: 'registration, profiles, a user’s groups (identity service)' },
          {
            name: 'groups',
            description: 'groups with their profiles (directory service) and members (identity service)'
          },
          { name: 'occupations', description: 'occupations (directory service) and their holders (identity service)' },
          { name: 'user-logs', description: 'login and logout records, written from events (audit service)' },
          { name: 'black-list', description: 'the patient blacklist (audit service)' }
        ]
      }
    })
    await app.register(swaggerUi, {
      routePrefix: '/docs',
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- @fastify/swagger-ui types its uiConfig and the document loosely
      uiConfig: DOCS_UI_CONFIG as any,
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the same, for the document
      transformSpecification: (spec) => docs.merge(spec as any) as any
    })
    // The events' AsyncAPI document, next to the OpenAPI one (generated from the same contracts).
    const asyncApi = JSON.stringify(asyncApiDocument())
    app.get('/docs/asyncapi.json', { schema: { hide: true }, config: { access: 'public' } }, async (_request, reply) =>
      reply.type('application/json; charset=utf-8').send(asyncApi)
    )
    const refresher = setInterval(() => void docs.refresh(), 15_000)
    refresher.unref()
    app.addHook('onReady', async () => {
      await docs.refresh()
    })
    app.addHook('onClose', async () => clearInterval(refresher))

    await app.register(natsPlugin, { url: config.NATS_URL, prefix: config.NATS_PREFIX, name: 'gateway' })
    await app.register(revocationPlugin, { ttlSeconds: config.REVOCATION_TTL_SECONDS })
    await app.register(authPlugin, { resolveKey: jwksKeyResolver(config.IDENTITY_URL) })
    const forwarder = new Forwarder({
      upstreams: { identity: config.IDENTITY_URL, directory: config.DIRECTORY_URL, audit: config.AUDIT_URL },
      timeoutMs: config.UPSTREAM_TIMEOUT_MS,
      budgetBytes: config.BODY_BUFFER_BUDGET_BYTES,
      revoked: (header) => {
        for (const r of parseRevokedSessions(header)) app.revocations.remember(r.sid, r.exp)
      }
    })
    app.addHook('onClose', async () => forwarder.close())
    await app.register(async function proxy(scope) {
      // A body is read whole (up to the 1 MiB limit; more is a 413, declared or streamed) before anything
      // is forwarded, so a slow upload holds only its own client connection and never an upstream one;
      // the service that owns the path parses it.
      scope.removeAllContentTypeParsers()
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT_BYTES }, (_request, body, done) =>
        done(null, body)
      )
      // Bodies being read, and answers being sent, are held in memory within one budget (the forwarder's):
      // a body counts its declared length, or the whole 1 MiB limit when chunked, an answer its length,
      // until the answer is finished or the connection closed. Past it a new upload is a quick 503.
      scope.addHook('preParsing', (request, reply, payload, done) => {
        const length = request.headers['content-length']
        if (length === undefined && request.headers['transfer-encoding'] === undefined) return done(null, payload)
        const declared = Number(length)
        const reserve =
          length !== undefined && Number.isFinite(declared) ? Math.min(declared, BODY_LIMIT_BYTES) : BODY_LIMIT_BYTES
        if (reserve > 0 && !forwarder.hold(reply.raw, reserve)) {
          reply.header('connection', 'close')
          return done(new ApiError(503, 'service_unavailable', {}, undefined, { 'retry-after': '1' }))
        }
        done(null, payload)
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
      scope.addHook('onSend', (_request, reply, payload, done) => {
        if (reply.statusCode === 413) reply.header('connection', 'close')
        done(null, payload)
      })
      for (const route of proxyRoutes()) {
        const upstream = route.owner
        scope.route({
          method: route.methods,
          url: route.path,
          config: { access: 'public' },
          schema: { hide: true },
          handler: function forward(request, reply) {
            const url = request.raw.url ?? ''
            const path = canonicalPath(url)
            if (path === null) throw new NotFoundError()
            return forwarder.forward(request, reply, upstream, path, forwardedQuery(url))
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
