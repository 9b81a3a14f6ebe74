import type { EntityManager } from '@mikro-orm/postgresql'

export interface ThrottleRule {
  max: number
  windowSeconds: number
}

export interface ThrottleState {
  failures: number
  /** Seconds until the window passes, for `Retry-After`. */
  retryAfter: number
}

const run = async <T>(em: EntityManager, sql: string, params: unknown[]): Promise<T> =>
  (await em.getConnection().execute(sql, params, 'all', em.getTransactionContext())) as T

/**
 * Failed-login counters in PostgreSQL, shared by every replica. A window starts at the first failure
 * and the counter restarts once it has passed.
 */
export class LoginThrottle {
  /**
   * Takes the username's lock until the caller's transaction ends (an advisory lock on the key), so
   * attempts on one username are checked one at a time: of 30 simultaneous wrong attempts only `max`
   * reach bcrypt, while simultaneous right ones all pass, each after the one before. `lookup` (a select
   * whose rows have a non-null column) rides along in the same round trip; its rows are answered. Call `check` after it: a statement
   * sees what committed before it started, so the counters must be read by a later one.
   */
  async lock<T>(em: EntityManager, userKey: string, lookup: { sql: string; params: unknown[] }): Promise<T[]> {
    // A left join: the lock side is always evaluated, whether or not the lookup finds anything (then its
    // one row is all nulls and is dropped here).
    const rows = await run<T[]>(
      em,
      `select found.* from (select pg_advisory_xact_lock(hashtext(?))) as locked left join lateral (${lookup.sql}) as found on true`,
      [userKey, ...lookup.params]
    )
    return rows.filter((row) => Object.values(row as object).some((value) => value !== null))
  }

  /**
   * Reads the failures of a username (whose lock the caller holds) and of the client address (not
   * locked: a burst from one address may overshoot its limit by a little).
   */
  async check(em: EntityManager, userKey: string, userRule: ThrottleRule, ipKey: string, ipRule: ThrottleRule) {
    const rows = await run<{ key: string; failures: number; retry_after: number }[]>(
      em,
      `select t.key, t.failures, extract(epoch from (t.window_start + make_interval(secs => r.win) - now()))::float as retry_after
       from (values (?, ?::int), (?, ?::int)) as r (key, win)
       join login_throttle t on t.key = r.key and t.window_start >= now() - make_interval(secs => r.win)`,
      [userKey, userRule.windowSeconds, ipKey, ipRule.windowSeconds]
    )
    const state = (key: string): ThrottleState => {
      const row = rows.find((r) => r.key === key)
      return row ? { failures: row.failures, retryAfter: Math.max(1, Math.ceil(row.retry_after)) } : { failures: 0, retryAfter: 0 }
    }
    return { user: state(userKey), ip: state(ipKey) }
  }

  /** Counts a failure, starting a new window when the last one has passed. */
  async fail(em: EntityManager, key: string, rule: ThrottleRule): Promise<void> {
    await run(
      em,
      `insert into login_throttle as t (key, window_start, failures) values (?, now(), 1)
       on conflict (key) do update set
         failures = case when t.window_start < now() - make_interval(secs => ?) then 1 else t.failures + 1 end,
         window_start = case when t.window_start < now() - make_interval(secs => ?) then now() else t.window_start end`,
      [key, rule.windowSeconds, rule.windowSeconds]
    )
  }

  async clear(em: EntityManager, key: string): Promise<void> {
    await run(em, 'delete from login_throttle where key = ?', [key])
  }
}
