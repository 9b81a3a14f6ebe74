import type { EntityManager } from '@mikro-orm/postgresql'
import { preparedQuery, sql } from '@roster/service-kit'
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

/**
 * Failed-login counters in PostgreSQL (`login_throttle`; the only module that touches the table), shared by
 * every replica, per username and per client address.
 *
 * An attempt is admitted before its password is checked by *reserving* it: one atomic conditional upsert
 * per key raises `pending` only while `failures + pending < max`. All keys of an attempt are reserved by
 * one statement (rows in a fixed key order, so two attempts never deadlock); when a key refuses, the keys
 * it did reserve are released at once by a second statement (until then they count one attempt more:
 * another attempt may find itself `busy` for that moment, and asks again). After the check the
 * reservation is settled: a failure moves it to `failures`, a success drops it (and, for the username,
 * clears its failures). So however many attempts run at once, at most `max` failures of a key reach bcrypt
 * in its window, and no lock or transaction is held while bcrypt runs.
 *
 * A window starts at a key's first failure and the counters restart once it has passed (a reservation
 * leaked by a crash is forgotten then too).
 *
 * Raw SQL: the reservation is a conditional upsert (`on conflict … do update … where`), the refusal reads the
 * wait in the database's clock, and settling is a conditional update in one statement; MikroORM's `upsert`
 * and `nativeUpdate` cannot make a write conditional on the row's own values. Every statement commits alone
 * (no transaction) as a named statement (`preparedQuery`): a login runs three of them.
 */
export class LoginThrottle {
  async reserve(em: EntityManager, keys: ThrottleKey[]): Promise<ReserveOutcome> {
    const ordered = [...keys].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    const reserved = await preparedQuery<{ key: string }>(
      em,
      'identity_throttle_reserve',
      // Each key's rule as a row; `since` is where a window that started earlier has passed.
      `with rule as (
         select key, now() - make_interval(secs => secs) as since, max, n
         from unnest($1::text[], $2::float8[], $3::int[]) with ordinality as r(key, secs, max, n))
       insert into login_throttle as t (key, window_start, failures, pending)
         select key, now(), 0, 1 from rule order by n
       on conflict (key) do update set
         failures = case when t.window_start < (select since from rule where key = t.key) then 0 else t.failures end,
         pending = case when t.window_start < (select since from rule where key = t.key) then 1 else t.pending + 1 end,
         window_start = case when t.window_start < (select since from rule where key = t.key) then now()
           else t.window_start end
         where t.window_start < (select since from rule where key = t.key)
           or t.failures + t.pending < (select max from rule where key = t.key)
       returning t.key`,
      [ordered.map((k) => k.key), ordered.map((k) => k.windowSeconds), ordered.map((k) => k.max)]
    )
    if (reserved.length === ordered.length) return { kind: 'admitted', reservation: { keys: ordered } }
    const admitted = new Set(reserved.map((r) => r.key))
    await this.settle(em, { keys: ordered.filter((k) => admitted.has(k.key)) }, 'none')
    const refused = ordered.find((k) => !admitted.has(k.key))!
    const [state] = await sql<{ failures: number; retry_after: number }>(
      em,
      `select failures, extract(epoch from (window_start + make_interval(secs => ?) - now()))::float as retry_after
       from login_throttle where key = ?`,
      [refused.windowSeconds, refused.key]
    )
    return state && state.failures >= refused.max
      ? { kind: 'locked', retryAfter: Math.max(1, Math.ceil(state.retry_after)) }
      : { kind: 'busy' }
  }

  /**
   * Ends a reservation: `failure` counts it, `success` drops it and clears the failures of `clearKey`
   * (the username), `none` (the check never ran) only drops it. Outside a transaction.
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
      await preparedQuery(
        em,
        'identity_throttle_settle',
        `update login_throttle set
           pending = greatest(pending - 1, 0),
           failures = case when $1 then failures + 1 when $2 then 0 else failures end,
           window_start = case when $1 and failures = 0 then now() else window_start end
         where key = $3`,
        [outcome === 'failure', outcome === 'success' && key === clearKey, key]
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
