import type { EntityManager } from '@mikro-orm/postgresql'
import { LockMode } from '@mikro-orm/core'
import type { EventData } from '@roster/contracts'
import { sql } from '@roster/service-kit'
import { KnownUserEntity } from '../entities/index.js'
import { pgText } from './text.js'

/** What identity says about a user, from an `identity.user.created` / `updated` event or a read-through. */
export type UserFact = EventData<'identity.user.created'>

/** Whether audit knows the id as a user now (`live`), as a deleted one, or not at all. */
export type KnownState = 'live' | 'deleted' | 'unknown'

/**
 * Remembers a user fact, whichever path brought it (an event, or identity's answer to a read-through). Facts
 * arrive out of order (the consumer runs several at once), so an older version never overwrites a newer one;
 * a deleted user's tombstone is never undone, so a late or redelivered fact cannot bring it back (user ids
 * are never reused). Raw SQL: a conditional upsert (`on conflict … do update … where`) MikroORM cannot say.
 */
export async function applyUserFact(em: EntityManager, fact: UserFact): Promise<void> {
  await sql(
    em,
    `insert into known_user (id, username, is_staff, is_active, version, updated_at) values (?, ?, ?, ?, ?, now())
     on conflict (id) do update set username = excluded.username, is_staff = excluded.is_staff,
       is_active = excluded.is_active, version = excluded.version, updated_at = now()
     where known_user.deleted_at is null and known_user.version < excluded.version`,
    [fact.user_id, pgText(fact.username, 150), fact.is_staff, fact.is_active, fact.version]
  )
}

/**
 * `identity.user.deleted`: the id is no longer a user (a tombstone, kept); its log history and blacklist
 * entries stay. Raw SQL: an upsert that keeps the first deletion time, which MikroORM's upsert cannot say.
 */
export async function forgetUser(em: EntityManager, fact: EventData<'identity.user.deleted'>): Promise<void> {
  await sql(
    em,
    `insert into known_user (id, username, deleted_at, updated_at) values (?, ?, now(), now())
     on conflict (id) do update set deleted_at = coalesce(known_user.deleted_at, now()), updated_at = now()`,
    [fact.user_id, pgText(fact.username, 150)]
  )
}

/**
 * What audit knows of the id. With `lock`, inside a transaction, the row is share-locked for the rest of
 * it: a deletion that arrived meanwhile is seen, a later one waits for the transaction to end.
 */
export async function knownState(em: EntityManager, id: number, options: { lock?: boolean } = {}): Promise<KnownState> {
  const row = await em.findOne(
    KnownUserEntity,
    { id },
    {
      fields: ['deletedAt'],
      ...(options.lock ? { lockMode: LockMode.PESSIMISTIC_READ } : {}),
      disableIdentityMap: true
    }
  )
  if (!row) return 'unknown'
  return row.deletedAt ? 'deleted' : 'live'
}
