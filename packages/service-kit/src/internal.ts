import fp from 'fastify-plugin'
import { createServer, IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse, RouteOptions } from 'fastify'

/**
 * Internal routes (service-to-service read-through under `/internal/`, `/metrics`, `/ready`, a service's
 * own `/docs`) are answered only on the process's second, internal listener (`INTERNAL_PORT`), which the
 * gateway never forwards to and a NetworkPolicy keeps inside the cluster.
 *
 * One Fastify app serves both listeners. The internal `http.Server` marks each raw request with a symbol
 * before handing it to the app's router, and internal routes carry a router constraint that only a marked
 * request satisfies: on the public listener they do not exist at all, so they answer the ordinary 404 of
 * an unknown path (no 405, no `Allow`, nothing that tells them apart).
 */
export const INTERNAL_REQUEST = Symbol.for('roster.internal-request')

const CONSTRAINT = 'listener'
const INTERNAL = 'internal'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served only on the internal listener. */
    internal?: boolean
  }
  interface FastifyInstance {
    /** The internal listener, once `listenInternal` started it. */
    internalServer: Server | null
  }
}

/** A route is internal when its config says so, or when it lives under `/internal/` (whatever its config). */
export function isInternalRoute(route: Pick<RouteOptions, 'url' | 'config'>): boolean {
  return (route.config as { internal?: boolean } | undefined)?.internal === true || /^\/internal(\/|$)/.test(route.url)
}

/**
 * Registers the router constraint and marks internal routes; register it before any route (it sees only
 * routes added after it). `internalPrefixes` marks every route under those paths as internal as well
 * (a service's `/docs`, whose routes a third-party plugin declares).
 */
export const internalListenerPlugin = fp(
  async function internalListener(app: FastifyInstance, options: { internalPrefixes?: string[] } = {}) {
    const prefixes = options.internalPrefixes ?? []
    if (!app.hasConstraintStrategy(CONSTRAINT)) {
      app.addConstraintStrategy({
        name: CONSTRAINT,
        // Not required when derived: the internal listener also answers the routes every listener has (`/health`).
        mustMatchWhenDerived: false,
        storage() {
          const handlers = new Map<string, unknown>()
          return {
            // eslint-disable-next-line @typescript-eslint/no-explicit-any -- find-my-way's constraint strategy store is typed per version
            get: (value: string) => (handlers.get(value) ?? null) as any,
            set: (value: string, store: unknown) => void handlers.set(value, store)
          }
        },
        deriveConstraint: (req: IncomingMessage & { [INTERNAL_REQUEST]?: boolean }) =>
          req[INTERNAL_REQUEST] === true ? INTERNAL : (undefined as unknown as string),
        validate(value: unknown) {
          if (value !== INTERNAL) throw new Error(`the ${CONSTRAINT} constraint takes only '${INTERNAL}'`)
        }
      })
    }
    app.addHook('onRoute', (route) => {
      const underPrefix = prefixes.some((p) => route.url === p || route.url.startsWith(p.endsWith('/') ? p : `${p}/`))
      if (!isInternalRoute(route) && !underPrefix) return
      route.config = { ...(route.config ?? {}), internal: true } as typeof route.config
      route.constraints = { ...(route.constraints ?? {}), [CONSTRAINT]: INTERNAL }
      // Not in any OpenAPI document: the gateway's public one keeps its own non-`/api` paths.
      route.schema = { ...(route.schema ?? {}), hide: true }
    })
    if (!app.hasDecorator('internalServer')) app.decorate('internalServer', null)
    app.addHook('onClose', async (instance) => {
      const server = instance.internalServer
      if (!server) return
      instance.internalServer = null
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeIdleConnections()
      })
    })
  },
  { name: 'roster-internal-listener' }
)

/** Timeouts and limits of the public server, copied so both listeners treat slow or odd clients alike. */
const MIRRORED = [
  'headersTimeout',
  'requestTimeout',
  'keepAliveTimeout',
  'timeout',
  'maxHeadersCount',
  'maxRequestsPerSocket'
] as const

/**
 * Starts the internal listener of a ready-to-listen app on `host:port` (0: a free port) and answers its
 * base URL. It shares the app's router, hooks and error answers; the public server's timeouts and its
 * `clientError` / `timeout` handling, as they are when this is called, are applied to it too (so call it
 * after the public `listen`, as `listen()` does). Closed with the app.
 */
export async function listenInternal(app: FastifyInstance, options: { host: string; port: number }): Promise<string> {
  if (app.internalServer) throw new Error('the internal listener is already started')
  await app.ready()
  // Timeouts are checked every second, as on the public server (Node's default is every 30 s).
  const server = createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
    ;(req as IncomingMessage & { [INTERNAL_REQUEST]?: boolean })[INTERNAL_REQUEST] = true
    app.routing(req, res)
  })
  const source = app.server as Server
  for (const key of MIRRORED) {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- copies numeric timeouts between two http.Server objects by name
    if (typeof source[key] === 'number') (server as any)[key] = source[key]
  }
  // What the kit or the gateway attached to the public server for odd and slow clients (never `request` or
  // `connection`: those are the server's own).
  for (const event of ['clientError', 'timeout', 'connect', 'checkExpectation'] as const) {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Node's listener signatures differ by event
    for (const listener of source.listeners(event)) server.on(event, listener as (...args: any[]) => void)
  }
  app.internalServer = server
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: options.host, port: options.port }, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    app.internalServer = null
    throw error
  }
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${address.port}`
  app.log.info({ url }, 'internal listener')
  return url
}

/** Marks an injected request as one that came in on the internal listener. */
class InternalRequest extends IncomingMessage {}
;(InternalRequest.prototype as unknown as Record<symbol, boolean>)[INTERNAL_REQUEST] = true

/** `app.inject` as the internal listener would receive it (tests of internal routes). */
export function injectInternal(app: FastifyInstance, options: InjectOptions | string): Promise<LightMyRequestResponse> {
  const opts: InjectOptions = typeof options === 'string' ? { url: options } : options
  return app.inject({ ...opts, Request: InternalRequest } as InjectOptions)
}
