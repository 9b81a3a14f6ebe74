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

    // The histogram's child of each method, route and status, found once: `observe(labels, value)` sorts
    // and joins the label names and values on every call. Routes are the registered templates, so the map
    // stays as small as the route table times the statuses they answer.
    const series = new Map<string, Histogram.Internal<'method' | 'route' | 'status'>>()
    // A callback hook: no promise per request.
    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched'
      if (route !== '/metrics') {
        const status = reply.statusCode
        const key = `${request.method} ${status} ${route}`
        let child = series.get(key)
        if (child === undefined) {
          child = duration.labels({ method: request.method, route, status })
          series.set(key, child)
        }
        child.observe(reply.elapsedTime / 1000)
        if (status >= 500) errors.inc({ route })
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
