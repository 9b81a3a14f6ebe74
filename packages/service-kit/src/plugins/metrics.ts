import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Registry, collectDefaultMetrics, Histogram, Counter } from 'prom-client'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry
  }
}

/** Prometheus metrics at `/metrics` (internal listener only): process defaults and a request-duration histogram per route. */
export const metricsPlugin = fp(
  async function metrics(app: FastifyInstance, options: { service: string }) {
    const registry = new Registry()
    registry.setDefaultLabels({ service: options.service })
    collectDefaultMetrics({ register: registry })
    const duration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration in seconds',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry]
    })
    const errors = new Counter({
      name: 'http_server_errors_total',
      help: 'responses with a 5xx status',
      labelNames: ['route'],
      registers: [registry]
    })
    app.decorate('metrics', registry)

    // A callback hook: no promise per request.
    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched'
      if (route !== '/metrics') {
        duration.observe({ method: request.method, route, status: reply.statusCode }, reply.elapsedTime / 1000)
        if (reply.statusCode >= 500) errors.inc({ route })
      }
      done()
    })

    app.get('/metrics', { config: { internal: true }, schema: { hide: true } }, async (_request, reply) => {
      reply.type(registry.contentType)
      return registry.metrics()
    })
  },
  { name: 'roster-metrics' }
)
