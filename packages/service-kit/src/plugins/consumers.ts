import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { EntityManager } from '@mikro-orm/postgresql'
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream'
import { Value } from '@sinclair/typebox/value'
import {
  EVENTS,
  EventEnvelopeSchema,
  STREAMS,
  type EventData,
  type EventEnvelope,
  type EventSubject,
  type StreamKey
} from '@roster/contracts'
import { transactional } from '../sql.js'
import { isEventData } from '../contract.js'

export type EventHandlers = {
  [S in EventSubject]?: (data: EventData<S>, event: EventEnvelope<S>, em: EntityManager) => Promise<void>
}

export interface ConsumerSpec {
  /** Durable name, shared by every replica of the service so each event is handled once. */
  durable: string
  stream: StreamKey
  handlers: EventHandlers
  /**
   * Messages handled at once (default 1, in stream order). More is for handlers whose effect does not
   * depend on order, such as appending to a log.
   */
  concurrency?: number
}

declare module 'fastify' {
  interface FastifyInstance {
    consumers: { stats(): Record<string, { handled: number; parked: number; skipped: number }> }
  }
}

const NS_PER_MS = 1_000_000

/**
 * Durable, explicit-ack JetStream consumers. Each message is validated against its contract schema,
 * handled in its own transaction on a fresh EntityManager, and recorded in `processed_event` in that
 * same transaction, so a redelivery has no second effect. A message that is malformed, of an unknown
 * subject, or still failing after `maxDeliver` deliveries is parked in `parked_event`, logged, and
 * terminated: it never blocks the stream.
 */
export const consumersPlugin = fp(
  async function consumers(app: FastifyInstance, options: { specs: ConsumerSpec[]; maxDeliver: number }) {
    const { js, jsm, names, ensureStream } = app.nats
    const stats: Record<string, { handled: number; parked: number; skipped: number }> = {}
    const running: { stop(): void; done: Promise<void> }[] = []
    let closed = false

    async function park(consumer: string, m: JsMsg, subject: string, reason: string) {
      await app.orm.em
        .fork()
        .getConnection()
        .execute('insert into parked_event (consumer, subject, payload, reason, deliveries) values (?, ?, ?, ?, ?)', [
          consumer,
          subject,
          // NUL cannot be stored in text (and would fail the park itself).
          m
            .string()
            .slice(0, 65536)
            .replace(/\u0000/g, '\uFFFD'),
          reason.slice(0, 2000).replace(/\u0000/g, '\uFFFD'),
          m.info.deliveryCount
        ])
      stats[consumer].parked++
      app.log.error({ consumer, subject, reason, deliveries: m.info.deliveryCount, seq: m.seq }, 'event parked')
      m.term()
    }

    async function handle(spec: ConsumerSpec, m: JsMsg) {
      const subject = names.unprefix(m.subject) ?? m.subject
      let envelope: EventEnvelope
      try {
        envelope = JSON.parse(m.string())
      } catch {
        return park(spec.durable, m, subject, 'payload is not JSON')
      }
      if (!Object.hasOwn(EVENTS, subject)) return park(spec.durable, m, subject, 'unknown subject')
      if (!Value.Check(EventEnvelopeSchema, envelope) || !isEventData(subject as EventSubject, envelope.data)) {
        return park(spec.durable, m, subject, 'payload does not match the contract')
      }
      const handler = spec.handlers[subject as EventSubject] as
        ((data: unknown, event: EventEnvelope, em: EntityManager) => Promise<void>) | undefined
      if (!handler) {
        m.ack()
        return
      }
      try {
        // A deadlock with a request's transaction is run again here rather than spending a delivery.
        const fresh = await transactional(app.orm.em.fork() as EntityManager, async (em) => {
          const result: { affectedRows: number } = await em
            .getConnection()
            .execute<{ affectedRows: number }>(
              'insert into processed_event (consumer, event_id, subject) values (?, ?, ?) on conflict do nothing',
              [spec.durable, envelope.id, subject],
              'run',
              em.getTransactionContext()
            )
          if (result.affectedRows === 0) return false
          await handler(envelope.data, envelope, em as EntityManager)
          return true
        })
        stats[spec.durable][fresh ? 'handled' : 'skipped']++
        m.ack()
      } catch (error) {
        if (m.info.deliveryCount >= options.maxDeliver) {
          return park(spec.durable, m, subject, (error as Error).message || String(error))
        }
        app.log.warn(
          { err: error, subject, deliveries: m.info.deliveryCount },
          'event handling failed; will be redelivered'
        )
        m.nak(Math.min(100 * 2 ** m.info.deliveryCount, 5000))
      }
    }

    async function ensureConsumer(spec: ConsumerSpec): Promise<{ stream: string; durable: string }> {
      const stream = await ensureStream(spec.stream)
      const durable = names.durable(spec.durable)
      const config = {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: names.subject(STREAMS[spec.stream].subjects[0]),
        ack_wait: 30_000 * NS_PER_MS,
        // Parking happens at maxDeliver; the server's own limit is only a backstop.
        max_deliver: options.maxDeliver + 1
      }
      try {
        await jsm.consumers.info(stream, durable)
      } catch {
        await jsm.consumers.add(stream, config).catch(async (error) => {
          await jsm.consumers.info(stream, durable).catch(() => {
            throw error
          })
        })
      }
      return { stream, durable }
    }

    function start(spec: ConsumerSpec) {
      stats[spec.durable] = { handled: 0, parked: 0, skipped: 0 }
      let messages: ConsumerMessages | null = null
      const done = (async () => {
        while (!closed) {
          try {
            const { stream, durable } = await ensureConsumer(spec)
            const consumer = await js.consumers.get(stream, durable)
            messages = await consumer.consume({ max_messages: 256 })
            if (closed) messages.stop()
            const limit = Math.max(1, spec.concurrency ?? 1)
            const inFlight = new Set<Promise<void>>()
            for await (const m of messages) {
              const task: Promise<void> = handle(spec, m)
                .catch((error) => {
                  app.log.error({ err: error }, 'event could not be handled or parked; will be redelivered')
                  m.nak(1000)
                })
                .finally(() => inFlight.delete(task))
              inFlight.add(task)
              if (inFlight.size >= limit) await Promise.race(inFlight)
            }
            await Promise.all(inFlight)
          } catch (error) {
            if (!closed) app.log.warn({ err: error, consumer: spec.durable }, 'consumer stopped; restarting')
          }
          if (!closed) await new Promise((r) => setTimeout(r, 1000))
        }
      })()
      running.push({ stop: () => messages?.stop(), done })
    }

    app.decorate('consumers', { stats: () => stats })
    app.addHook('onReady', async () => {
      for (const spec of options.specs) start(spec)
    })
    app.addHook('preClose', async () => {
      closed = true
      for (const r of running) r.stop()
      await Promise.all(running.map((r) => r.done))
    })
  },
  { name: 'roster-consumers', dependencies: ['roster-orm', 'roster-nats'] }
)
