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
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a fact's payload is any event's data, checked against the contract when it is consumed
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
  /** Wakes the relay now, to publish everything pending (commits publish their own rows by themselves). */
  kick(): void
  /** Publishes what is pending and older than `graceMs` (default 0: all); resolves with the number of rows sent. */
  relayOnce(graceMs?: number): Promise<number>
  /**
   * Resolves once the after-commit publishing of these rows (ids from `enqueue` / `emit`, transaction
   * committed) has finished, sent or left to the relay; at once for rows not being published now.
   */
  settled(eventIds: string[]): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    outbox: Outbox
  }
}

const BATCH = 200
/** Rows younger than this are left to the process that committed them unless the relay is kicked. */
const RELAY_GRACE_MS = 2000

/**
 * The transactional outbox: a change and the facts it causes commit together. Straight after the commit
 * the process that made it publishes them to JetStream with `msgID` = event id and marks them sent (one
 * `update` for everything that went out meanwhile): no extra transaction per event. What that misses (NATS
 * down, a crash between commit and publish, a failed mark) the relay finds by polling and publishes again;
 * JetStream drops a copy with a known `msgID` and consumers are idempotent, so nothing is lost or doubled.
 * Replicas share the relay's work with `for update skip locked`.
 */
export const outboxPlugin = fp(
  async function outbox(app: FastifyInstance, options: { pollMs: number; publishTimeoutMs?: number }) {
    const handlers = new Map<string, KindHandler>()
    const { js, names, ensureStream } = app.nats
    const timeout = options.publishTimeoutMs ?? 5000

    handlers.set('event', async (row) => {
      const subject = row.subject as EventSubject
      await ensureStream(streamOfSubject(subject))
      const envelope: EventEnvelope = {
        id: row.event_id,
        subject,
        occurred_at: row.payload.occurred_at,
        data: row.payload.data
      }
      await js.publish(names.subject(subject), JSON.stringify(envelope), { msgID: row.event_id, timeout })
    })

    let wake: (() => void) | null = null
    let kicked = false
    let closed = false
    let retryNow = false
    const kick = () => {
      kicked = true
      wake?.()
    }

    // What a transaction queued is published when MikroORM reports its commit, so producers never have to
    // remember to: rows are kept per transaction context until then (a rollback simply drops them).
    // MikroORM reports only the outermost commit, so rows queued inside a nested transaction (a savepoint,
    // which may still be rolled back alone) are left to the relay: later, never wrong.
    const queuedIn = new WeakMap<object, OutboxRow[]>()
    app.orm.em.getEventManager().registerSubscriber({
      afterTransactionCommit: ({ transaction }) => {
        const rows = transaction && queuedIn.get(transaction as object)
        if (!rows) return
        queuedIn.delete(transaction as object)
        publishCommitted(rows)
      }
    })

    async function enqueue(em: EntityManager, kind: string, subject: string, payload: unknown): Promise<string> {
      const eventId = randomUUID()
      const ctx = em.getTransactionContext()
      await em
        .getConnection()
        .execute(
          'insert into outbox_event (event_id, kind, subject, payload) values (?, ?, ?, ?)',
          [eventId, kind, subject, JSON.stringify(payload)],
          'run',
          ctx
        )
      const row: OutboxRow = { id: '', event_id: eventId, kind, subject, payload }
      if (!ctx) publishCommitted([row])
      else if (queuedIn.has(ctx)) queuedIn.get(ctx)!.push(row)
      else queuedIn.set(ctx, [row])
      return eventId
    }

    // Publishing after commit. Rows of one transaction go out in order; a failure leaves that row and
    // the ones after it to the relay.
    const inFlight = new Set<Promise<void>>()
    const publishing = new Map<string, Promise<void>>()
    const toMark: string[] = []
    let marking: Promise<void> | null = null
    function publishCommitted(rows: OutboxRow[]) {
      const job = (async () => {
        for (const row of rows) {
          try {
            await handlerOf(row)(row)
          } catch (error) {
            app.log.debug({ err: error, event: row.event_id }, 'publishing after commit failed; the relay will retry')
            return
          }
          toMark.push(row.event_id)
        }
        marking ??= markSent()
      })()
      inFlight.add(job)
      for (const row of rows) publishing.set(row.event_id, job)
      void job.finally(() => {
        inFlight.delete(job)
        for (const row of rows) if (publishing.get(row.event_id) === job) publishing.delete(row.event_id)
      })
    }

    /** Marks what went out since the last mark, in one statement; loops while more arrives meanwhile. */
    async function markSent(): Promise<void> {
      await Promise.resolve()
      try {
        while (toMark.length > 0) {
          const ids = toMark.splice(0, 1000)
          try {
            await app.orm.em
              .fork()
              .getConnection()
              .execute(
                `update outbox_event set published_at = now() where event_id in (${ids.map(() => '?').join(',')})`,
                ids
              )
          } catch (error) {
            // Left unmarked, they are published again by the relay and dropped by JetStream as copies.
            app.log.warn({ err: error, events: ids.length }, 'could not mark published outbox rows')
          }
        }
      } finally {
        marking = null
      }
    }

    // While NATS is away nothing is sent: a request written then gets no answer after the reconnect and
    // would hold the relay (and its row locks) for its whole timeout. The reconnect wakes the relay.
    const handlerOf = (row: OutboxRow): KindHandler => {
      const handler = handlers.get(row.kind)
      if (!handler) throw new Error(`no outbox handler for kind ${row.kind}`)
      if (!app.nats.connected()) throw new Error('NATS is disconnected')
      return handler
    }

    /** Publishes pending rows (by default also those committed a moment ago, which their process is publishing). */
    async function relayOnce(graceMs = 0): Promise<number> {
      const em = app.orm.em.fork()
      const outcome = await em.transactional(async (tem) => {
        const connection = tem.getConnection()
        const ctx = tem.getTransactionContext()
        const rows: OutboxRow[] = await connection.execute(
          `select id, event_id, kind, subject, payload from outbox_event
           where published_at is null and created_at <= now() - make_interval(secs => ?)
           order by id limit ${BATCH} for update skip locked`,
          [graceMs / 1000],
          'all',
          ctx
        )
        // One at a time, in order, stopping at the first failure.
        const sent: string[] = []
        let error: unknown = null
        for (const row of rows) {
          try {
            await handlerOf(row)(row)
            sent.push(row.id)
          } catch (failure) {
            error = failure
            break
          }
        }
        if (sent.length > 0) {
          await connection.execute(
            `update outbox_event set published_at = now() where id in (${sent.map(() => '?').join(',')})`,
            sent,
            'run',
            ctx
          )
        }
        return { sent: sent.length, error }
      })
      // Thrown after the commit, so the rows that did go out stay marked.
      if (outcome.error) throw outcome.error
      return outcome.sent
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
        const wasKicked = kicked
        kicked = false
        try {
          const n = await relayOnce(wasKicked ? 0 : RELAY_GRACE_MS)
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
          if (failures === 1 || failures % 30 === 0)
            app.log.warn({ err: error, failures }, 'outbox relay could not publish; will retry')
        }
        if (closed) break
        if (retryNow) failures = 0
        retryNow = false
        await pause(failures > 0 ? Math.min(options.pollMs * 2 ** failures, 5000) : options.pollMs)
      }
    }

    app.decorate('outbox', {
      emit: (em, subject, data) => enqueue(em, 'event', subject, { occurred_at: new Date().toISOString(), data }),
      enqueue,
      onKind: (kind, handler) => void handlers.set(kind, handler),
      kick,
      relayOnce,
      settled: async (eventIds) => {
        await Promise.all(eventIds.map((id) => publishing.get(id) ?? Promise.resolve()))
      }
    } satisfies Outbox)

    // Rows that waited while NATS was away go out as soon as it is back, not at the next retry.
    app.nats.onReconnect(() => {
      retryNow = true
      kick()
    })

    let running: Promise<void> | null = null
    app.addHook('onReady', async () => {
      running = loop()
    })
    app.addHook('preClose', async () => {
      closed = true
      kick()
      await running
      await Promise.allSettled([...inFlight])
      await marking
    })
  },
  { name: 'roster-outbox', dependencies: ['roster-orm', 'roster-nats'] }
)
