import type { EntityManager } from '@mikro-orm/postgresql'
import type { FastifyBaseLogger } from 'fastify'
import { INTERNAL_PATHS, type EventData } from '@roster/contracts'
import { readThrough } from '@roster/service-kit'
import { pgText } from './user-logs.js'

type UserFact = EventData<'identity.user.created'>

const MAX_ID = 2147483647

const run = (em: EntityManager, sql: string, params: unknown[]) =>
  em.getConnection().execute<{ affectedRows: number }>(sql, params, 'run', em.getTransactionContext())

/**
 * `identity.user.created` / `updated`: remember the user. Facts arrive out of order (several are handled
 * at once), so an older version never overwrites a newer one; a deleted user's tombstone is never undone,
 * so a late or redelivered `updated` cannot bring it back (user ids are never reused). Username and
 * flags are kept for operators only; audit's decisions rest on existence alone.
 */
export async function applyUserFact(em: EntityManager, fact: UserFact): Promise<void> {
  await run(
    em,
    `insert into known_user (id, username, is_staff, is_active, version, updated_at) values (?, ?, ?, ?, ?, now())
     on conflict (id) do update set username = excluded.username, is_staff = excluded.is_staff,
       is_active = excluded.is_active, version = excluded.version, updated_at = now()
     where known_user.deleted_at is null and known_user.version < excluded.version`,
    [fact.user_id, pgText(fact.username, 150), fact.is_staff, fact.is_active, fact.version]
  )
}

/** `identity.user.deleted`: the id is no longer a user; its log history and blacklist entries stay. */
export async function forgetUser(em: EntityManager, fact: EventData<'identity.user.deleted'>): Promise<void> {
  await run(
    em,
    `insert into known_user (id, username, deleted_at, updated_at) values (?, ?, now(), now())
     on conflict (id) do update set deleted_at = coalesce(known_user.deleted_at, now()), updated_at = now()`,
    [fact.user_id, pgText(fact.username, 150)]
  )
}

/**
 * The user ids audit knows, from `IDENTITY` events. On a miss (a user created a moment ago, whose event
 * has not arrived yet) identity is asked once over internal HTTP and the answer is remembered, so a
 * client never sees a false "does not exist".
 */
export class KnownUsers {
  constructor(
    private readonly identityUrl: string,
    private readonly timeoutMs: number,
    private readonly log: FastifyBaseLogger
  ) {}

  /** A user that exists now (blacklisting needs one). */
  async exists(em: EntityManager, id: number): Promise<boolean> {
    if (!Number.isInteger(id) || id < 1 || id > MAX_ID) return false
    const state = await this.localState(em, id)
    if (state !== 'unknown') return state === 'live'
    return this.readThrough(em, id)
  }

  /**
   * A user whose log history may be read: one that exists, or one that existed and was deleted (its
   * history stays, so an admin can still read it).
   */
  async hasHistory(em: EntityManager, id: number): Promise<boolean> {
    if ((await this.localState(em, id)) !== 'unknown') return true
    const [log] = await em.getConnection().execute<unknown[]>('select 1 from user_log where user_id = ? limit 1', [id])
    if (log) return true
    return this.readThrough(em, id)
  }

  private async localState(em: EntityManager, id: number): Promise<'live' | 'deleted' | 'unknown'> {
    const [row] = await em
      .getConnection()
      .execute<{ deleted: boolean }[]>('select deleted_at is not null as deleted from known_user where id = ?', [id])
    if (!row) return 'unknown'
    return row.deleted ? 'deleted' : 'live'
  }

  private async readThrough(em: EntityManager, id: number): Promise<boolean> {
    const fact = await readThrough(this.identityUrl, INTERNAL_PATHS.user(id), 'identity.user.created', {
      timeoutMs: this.timeoutMs,
      log: this.log
    })
    if (!fact) return false
    // Remembered without overriding what events said; a tombstone in particular stays.
    await run(
      em,
      `insert into known_user (id, username, is_staff, is_active, version, updated_at) values (?, ?, ?, ?, ?, now())
       on conflict (id) do nothing`,
      [id, pgText(String(fact.username ?? ''), 150), fact.is_staff === true, fact.is_active !== false, Number(fact.version) || 0]
    )
    return true
  }
}
