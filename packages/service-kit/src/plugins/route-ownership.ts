import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { routesOwnedBy } from '@roster/contracts'

/**
 * Route ownership is declared once, in contracts (`PUBLIC_ROUTES`, `INTERNAL_ROUTES`): the gateway routes from it,
 * and this check makes a service start only when the `/api` and `/internal` routes it registers are exactly the
 * ones declared for it, so a route added or moved in one place and not the other fails at start-up (and in tests).
 * A service the table does not name (a kit test's probe) is not checked.
 */
export const routeOwnershipPlugin = fp(
  async function routeOwnership(app: FastifyInstance, options: { service: string }) {
    if (!['identity', 'directory', 'audit'].includes(options.service)) return
    const declared = new Set(routesOwnedBy(options.service as 'identity'))
    const registered = new Set<string>()
    const stray: string[] = []
    app.addHook('onRoute', (route) => {
      if (!/^\/(api|internal)\//.test(route.url)) return
      // The kit's own 405 answers for the other methods of a declared path.
      if (route.config?.methodNotAllowed) return
      for (const method of [route.method].flat()) {
        if (method === 'HEAD') continue
        const key = `${method} ${route.url}`
        if (declared.has(key)) registered.add(key)
        else stray.push(key)
      }
    })
    app.addHook('onReady', async () => {
      const missing = [...declared].filter((key) => !registered.has(key))
      if (stray.length || missing.length) {
        throw new Error(
          `${options.service}'s routes differ from contracts/routes.ts: ` +
            [
              ...stray.map((k) => `registered but not declared: ${k}`),
              ...missing.map((k) => `declared, not registered: ${k}`)
            ].join('; ')
        )
      }
    })
  },
  { name: 'roster-route-ownership' }
)

declare module 'fastify' {
  interface FastifyContextConfig {
    /** One of the kit's 405 answers for the methods a declared path lacks. */
    methodNotAllowed?: boolean
  }
}
