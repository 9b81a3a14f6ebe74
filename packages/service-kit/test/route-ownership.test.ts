import t from 'tap'
import Fastify from 'fastify'
import { INTERNAL_ROUTES, PUBLIC_ROUTES, routesOwnedBy } from '@roster/contracts'
import { routeOwnershipPlugin } from '../src/plugins/route-ownership.js'

/** A bare app with the check, registering the given `METHOD /path` routes. */
async function appWith(service: string, routes: string[]) {
  const app = Fastify()
  await app.register(routeOwnershipPlugin, { service })
  for (const route of routes) {
    const [method, url] = route.split(' ')
    app.route({ method: method as 'GET', url, handler: async () => ({}) })
  }
  return app
}

t.test('a service starts with exactly the routes contracts declare for it', async (t) => {
  const app = await appWith('audit', routesOwnedBy('audit'))
  await app.ready()
  await app.close()
  t.ok(routesOwnedBy('audit').includes('GET /api/users/:pk/user-logs/'), "a user's logs are audit's")
  t.ok(routesOwnedBy('identity').includes('GET /internal/users/:pk'), 'internal routes are declared too')
  t.equal(
    routesOwnedBy('identity').length + routesOwnedBy('directory').length + routesOwnedBy('audit').length,
    PUBLIC_ROUTES.length + INTERNAL_ROUTES.length,
    'every route has one owner'
  )
})

t.test('a route registered but not declared, or declared but missing, stops the start', async (t) => {
  const stray = await appWith('directory', [...routesOwnedBy('directory'), 'GET /api/groups/:pk/extra/'])
  await t.rejects(async () => {
    await stray.ready()
  }, /registered but not declared: GET \/api\/groups\/:pk\/extra\//)
  const owned = routesOwnedBy('directory')
  const missing = await appWith('directory', owned.slice(1))
  await t.rejects(
    async () => {
      await missing.ready()
    },
    new RegExp(`declared, not registered: ${owned[0].replace(/[/]/g, '\\/')}`)
  )
  const elsewhere = await appWith('audit', [...routesOwnedBy('audit'), 'GET /api/users/'])
  await t.rejects(
    async () => {
      await elsewhere.ready()
    },
    /registered but not declared: GET \/api\/users\//,
    "identity's route in audit"
  )
})

t.test('routes outside /api and /internal, and services the table does not name, are not checked', async () => {
  const app = await appWith('audit', [...routesOwnedBy('audit'), 'GET /metrics', 'GET /docs/json'])
  await app.ready()
  await app.close()
  const probe = await appWith('probe', ['GET /api/things/'])
  await probe.ready()
  await probe.close()
})
