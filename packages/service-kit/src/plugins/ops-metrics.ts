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

    /** A gauge whose value is the one number `query` answers (as `value`), read at scrape time. */
    const sqlGauge = (name: string, help: string, query: string) =>
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          try {
            const [row] = await sql<{ value: string | null }>(query)
            this.set(Number(row?.value ?? 0))
          } catch {
            this.reset()
          }
        }
      })
    sqlGauge(
      'roster_outbox_unpublished',
      'events in the outbox not yet published to NATS',
      'select count(*) as value from outbox_event where published_at is null'
    )
    sqlGauge(
      'roster_outbox_oldest_unpublished_seconds',
      'age of the oldest event in the outbox not yet published (0 when none)',
      'select extract(epoch from now() - min(created_at)) as value from outbox_event where published_at is null'
    )
    sqlGauge(
      'roster_parked_events',
      'events parked by a consumer after failing or being malformed (rows in parked_event)',
      'select count(*) as value from parked_event'
    )
    new Gauge({
      name: 'roster_consumer_pending',
      help: "messages of a durable consumer not yet delivered or not yet acknowledged (the consumer's lag)",
      labelNames: ['consumer'],
      registers,
      async collect() {
        try {
          const { jsm, names } = app.nats
          for (const spec of options.consumers) {
            const info = await jsm.consumers
              .info(names.stream(spec.stream), names.durable(spec.durable))
              .catch(() => null)
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
