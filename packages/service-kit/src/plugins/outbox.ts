import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { EventData, EventEnvelope, EventSubject } from '@roster/contracts'
import { streamOfSubject } from '@roster/contracts'

export interface OutboxRow {
  id: string
  event_id: string
  kind: string
  subject: string
  payload: any
}
type KindHandler = (row: OutboxRow) => Promise<void>

export interface Outbox {
  /** Queues an event in the caller's transaction: it is published if and only if the transaction commits. */
  emit<S extends EventSubject>(em: EntityManager, subject: S, data: EventData<S>): Promise<string>
  /** Queues a task of another kind (e.g. a KV write) with the same guarantee. */
  enqueue(em: EntityManager, kind: string, subject: string, payload: unknown): Promise<string>
  /** Handles rows of a kind other than `event`. */
  onKind(kind: string, handler: KindHandler): void
  /** Wakes the relay now. Commits that queued something wake it by themselves. */
  kick(): void
  /** Publishes what is pending; resolves with the number of rows sent. */
  relayOnce(): Promise<number>
}

declare module 'fastify' {
  interface FastifyInstance {
    outbox: Outbox
  }
}

const BATCH = 200

/**
 * The transactional outbox: a change and the facts it causes commit together; the relay publishes them
 * to JetStream with `msgID` = event id (so a retry is de-duplicated) and marks them sent. NATS being
 * down delays events, never loses them. Replicas share the work with `for update skip locked`.
 */
export const outboxPlugin = fp(
  async function outbox(app: FastifyInstance, options: { pollMs: number; publishTimeoutMs?: number }) {
    const handlers = new Map<string, KindHandler>()
    const { js, names, ensureStream } = app.nats
    const timeout = options.publishTimeoutMs ?? 5000

    handlers.set('event', async (row) => {
      const subject = row.subject as EventSubject
      await ensureStream(streamOfSubject(subject))
      const envelope: EventEnvelope = { id: row.event_id, subject, occurred_at: row.payload.occurred_at, data: row.payload.data }
      await js.publish(names.subject(subject), JSON.stringify(envelope), { msgID: row.event_id, timeout })
    })

    let wake: (() => void) | null = null
    let kicked = false
    let closed = false
    const kick = () => {
      kicked = true
      wake?.()
    }

    // The relay wakes when a transaction that queued something commits, so producers never have to
    // remember to: the transaction contexts that enqueued are noted, and MikroORM's commit event kicks.
    const queuedIn = new WeakSet<object>()
    app.orm.em.getEventManager().registerSubscriber({
      afterTransactionCommit: ({ transaction }) => {
        if (transaction && queuedIn.has(transaction as object)) kick()
      }
    })

    async function enqueue(em: EntityManager, kind: string, subject: string, payload: unknown): Promise<string> {
      const eventId = randomUUID()
      const ctx = em.getTransactionContext()
      if (ctx) queuedIn.add(ctx)
      await em
        .getConnection()
        .execute(
          'insert into outbox_event (event_id, kind, subject, payload) values (?, ?, ?, ?)',
          [eventId, kind, subject, JSON.stringify(payload)],
          'run',
          ctx
        )
      if (!ctx) kick()
      return eventId
    }

    async function relayOnce(): Promise<number> {
      const em = app.orm.em.fork()
      return em.transactional(async (tem) => {
        const connection = tem.getConnection()
        const ctx = tem.getTransactionContext()
        const rows: OutboxRow[] = await connection.execute(
          `select id, event_id, kind, subject, payload from outbox_event
           where published_at is null order by id limit ${BATCH} for update skip locked`,
          [],
          'all',
          ctx
        )
        const sent: string[] = []
        try {
          for (const row of rows) {
            const handler = handlers.get(row.kind)
            if (!handler) throw new Error(`no outbox handler for kind ${row.kind}`)
            await handler(row)
            sent.push(row.id)
          }
        } finally {
          if (sent.length > 0) {
            await connection.execute(
              `update outbox_event set published_at = now() where id in (${sent.map(() => '?').join(',')})`,
              sent,
              'run',
              ctx
            )
          }
        }
        return sent.length
      })
    }

    const pause = (ms: number) =>
      new Promise<void>((resolve) => {
        if (kicked) return resolve()
        const timer = setTimeout(resolve, ms)
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })

    async function loop() {
      let failures = 0
      let sweeps = 0
      while (!closed) {
        kicked = false
        try {
          const n = await relayOnce()
          failures = 0
          if (n === BATCH) continue
          if (++sweeps % 600 === 0) {
            await app.orm.em
              .fork()
              .getConnection()
              .execute(`delete from outbox_event where published_at < now() - interval '1 day'`)
          }
        } catch (error) {
          failures++
          if (failures === 1 || failures % 30 === 0) app.log.warn({ err: error, failures }, 'outbox relay could not publish; will retry')
        }
        if (closed) break
        await pause(failures > 0 ? Math.min(options.pollMs * 2 ** failures, 5000) : options.pollMs)
      }
    }

    app.decorate('outbox', {
      emit: (em, subject, data) => enqueue(em, 'event', subject, { occurred_at: new Date().toISOString(), data }),
      enqueue,
      onKind: (kind, handler) => void handlers.set(kind, handler),
      kick,
      relayOnce
    } satisfies Outbox)

    let running: Promise<void> | null = null
    app.addHook('onReady', async () => {
      running = loop()
    })
    app.addHook('preClose', async () => {
      closed = true
      kick()
      await running
    })
  },
  { name: 'roster-outbox', dependencies: ['roster-orm', 'roster-nats'] }
)
