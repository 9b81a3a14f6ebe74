import type { EntityManager } from '@mikro-orm/postgresql'
import { sql, transactional } from '@roster/service-kit'
import { LoginThrottleEntity } from '../entities/index.js'

export interface ThrottleRule {
  max: number
  windowSeconds: number
}

export interface ThrottleKey extends ThrottleRule {
  key: string
}

/** Attempts admitted to the password check; settle each exactly once. */
export interface Reservation {
  keys: ThrottleKey[]
}

export type ReserveOutcome =
  | { kind: 'admitted'; reservation: Reservation }
  /** A key has `max` failures in its window: wait `retryAfter` seconds. */
  | { kind: 'locked'; retryAfter: number }
  /** Attempts still being checked fill a key's allowance; asking again shortly may succeed. */
  | { kind: 'busy' }

class Refused extends Error {
  constructor(readonly outcome: Exclude<ReserveOutcome, { kind: 'admitted' }>) {
    super(outcome.kind)
  }
}

/**
 * Failed-login counters in PostgreSQL (`login_throttle`; the only module that touches the table), shared by
 * every replica, per username and per client address.
 *
 * An attempt is admitted before its password is checked by *reserving* it: one atomic conditional upsert
 * per key raises `pending` only while `failures + pending < max`, and all keys of an attempt are reserved
 * in one short transaction (all or none; keys in a fixed order, so two attempts never deadlock). After
 * the check the reservation is settled: a failure moves it to `failures`, a success drops it (and, for
 * the username, clears its failures). So however many attempts run at once, at most `max` failures of a
 * key reach bcrypt in its window, and no lock or transaction is held while bcrypt runs.
 *
 * A window starts at a key's first failure and the counters restart once it has passed (a reservation
 * leaked by a crash is forgotten then too).
 *
 * Raw SQL: the reservation is a conditional upsert (`on conflict … do update … where`), the refusal reads the
 * wait in the database's clock, and settling is a conditional update in one statement; MikroORM's `upsert`
 * and `nativeUpdate` cannot make a write conditional on the row's own values.
 */
export class LoginThrottle {
  async reserve(em: EntityManager, keys: ThrottleKey[]): Promise<ReserveOutcome> {
    const ordered = [...keys].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    try {
      await transactional(em, async (t) => {
        for (const k of ordered) {
          const rows = await sql(
            t,
            `insert into login_throttle as t (key, window_start, failures, pending) values (?, now(), 0, 1)
             on conflict (key) do update set
               failures = case when t.window_start < now() - make_interval(secs => ?) then 0 else t.failures end,
               pending = case when t.window_start < now() - make_interval(secs => ?) then 1 else t.pending + 1 end,
               window_start = case when t.window_start < now() - make_interval(secs => ?) then now()
                 else t.window_start end
             where t.window_start < now() - make_interval(secs => ?) or t.failures + t.pending < ?
             returning 1`,
            [k.key, k.windowSeconds, k.windowSeconds, k.windowSeconds, k.windowSeconds, k.max]
          )
          if (rows.length === 1) continue
          const [state] = await sql<{ failures: number; retry_after: number }>(
            t,
            `select failures,
               extract(epoch from (window_start + make_interval(secs => ?) - now()))::float as retry_after
             from login_throttle where key = ?`,
            [k.windowSeconds, k.key]
          )
          throw new Refused(
            state && state.failures >= k.max
              ? { kind: 'locked', retryAfter: Math.max(1, Math.ceil(state.retry_after)) }
              : { kind: 'busy' }
          )
        }
      })
    } catch (error) {
      if (error instanceof Refused) return error.outcome
      throw error
    }
    return { kind: 'admitted', reservation: { keys: ordered } }
  }

  /**
   * Ends a reservation: `failure` counts it, `success` drops it and clears the failures of `clearKey`
   * (the username), `none` (the check never ran) only drops it.
   */
  async settle(
    em: EntityManager,
    reservation: Reservation,
    outcome: 'failure' | 'success' | 'none',
    clearKey?: string
  ): Promise<void> {
    // One statement per key, in the order `reserve` locks them: a statement over several rows would lock
    // them in whatever order it scans them, and could deadlock with a reservation.
    for (const { key } of reservation.keys) {
      await sql(
        em,
        `update login_throttle set
           pending = greatest(pending - 1, 0),
           failures = case when ? then failures + 1 when ? then 0 else failures end,
           window_start = case when ? and failures = 0 then now() else window_start end
         where key = ?`,
        [outcome === 'failure', outcome === 'success' && key === clearKey, outcome === 'failure', key]
      )
    }
  }

  /** Failures and attempts in flight of a key now (tests, diagnostics). */
  async state(em: EntityManager, key: string): Promise<{ failures: number; pending: number } | null> {
    const row = await em.findOne(
      LoginThrottleEntity,
      { key },
      { fields: ['failures', 'pending'], disableIdentityMap: true }
    )
    return row ? { failures: row.failures, pending: row.pending } : null
  }
}
