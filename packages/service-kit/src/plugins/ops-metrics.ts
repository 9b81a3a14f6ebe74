import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Gauge } from 'prom-client'
import type { ConsumerSpec } from './consumers.js'

/**
 * Gauges the alert rules (deploy/k8s/base/monitoring.yaml) watch, read at scrape time: the outbox's
 * unpublished events and the age of the oldest, parked events, each durable consumer's backlog in
 * JetStream, and whether the process is ready. A failed read leaves the gauge out of that scrape.
 */
export const opsMetricsPlugin = fp(
  async function opsMetrics(app: FastifyInstance, options: { consumers: ConsumerSpec[] }) {
    const registers = [app.metrics]
    const sql = async <T>(query: string): Promise<T[]> => app.orm.em.getConnection().execute<T[]>(query)

    new Gauge({
      name: 'roster_outbox_unpublished',
      help: 'events in the outbox not yet published to NATS',
      registers,
      async collect() {
        try {
          const [row] = await sql<{ n: string }>('select count(*) as n from outbox_event where published_at is null')
          this.set(Number(row?.n ?? 0))
        } catch {
          this.reset()
        }
      }
    })
    new Gauge({
      name: 'roster_outbox_oldest_unpublished_seconds',
      help: 'age of the oldest event in the outbox not yet published (0 when none)',
      registers,
      async collect() {
        try {
          const [row] = await sql<{ age: string | null }>(
            'select extract(epoch from now() - min(created_at)) as age from outbox_event where published_at is null'
          )
          this.set(Number(row?.age ?? 0))
        } catch {
          this.reset()
        }
      }
    })
    new Gauge({
      name: 'roster_parked_events',
      help: 'events parked by a consumer after failing or being malformed (rows in parked_event)',
      registers,
      async collect() {
        try {
          const [row] = await sql<{ n: string }>('select count(*) as n from parked_event')
          this.set(Number(row?.n ?? 0))
        } catch {
          this.reset()
        }
      }
    })
    new Gauge({
      name: 'roster_consumer_pending',
      help: "messages of a durable consumer not yet delivered or not yet acknowledged (the consumer's lag)",
      labelNames: ['consumer'],
      registers,
      async collect() {
        try {
          const { jsm, names } = app.nats
          for (const spec of options.consumers) {
            const info = await jsm.consumers.info(names.stream(spec.stream), names.durable(spec.durable)).catch(() => null)
            if (info !== null) this.set({ consumer: spec.durable }, info.num_pending + info.num_ack_pending)
          }
        } catch {
          this.reset()
        }
      }
    })
  },
  { name: 'roster-ops-metrics', dependencies: ['roster-metrics', 'roster-orm', 'roster-nats'] }
)
