import type { EntityManager } from '@mikro-orm/postgresql'
import { LockMode } from '@mikro-orm/core'
import type { EventData } from '@roster/contracts'
import { sql, type Page } from '@roster/service-kit'
import { GroupReplicaEntity, OccupationReplicaEntity } from '../entities/index.js'

/**
 * Identity's replica of the directory's groups and occupations (`group_replica`, `occupation_replica`): the only
 * module that reads or writes those tables. A fact is applied only when its version is newer than the one held;
 * a deletion leaves a tombstone (`deleted`) so a late update cannot bring the row back.
 *
 * The writes are raw: each is one conditional upsert (`on conflict … do update … where version < excluded.version`),
 * which MikroORM's `upsert` cannot make conditional.
 */

export type OccupationFact = EventData<'directory.occupation.created'>
export type GroupFact = EventData<'directory.group.created'>

/** What the replica knows of a row: absent, live, or deleted. */
export type ReplicaState = 'absent' | 'live' | 'deleted'

const stateOf = (row: { deleted: boolean } | null): ReplicaState =>
  row ? (row.deleted ? 'deleted' : 'live') : 'absent'

export async function applyOccupation(em: EntityManager, fact: OccupationFact): Promise<void> {
  await sql(
    em,
    `insert into occupation_replica (id, name, version, deleted) values (?, ?, ?, false)
     on conflict (id) do update set name = excluded.name, version = excluded.version, deleted = false
     where occupation_replica.version < excluded.version`,
    [fact.occupation_id, fact.name, fact.version]
  )
}

/** Whether this deletion was news (the tombstone written now). */
export async function tombstoneOccupation(
  em: EntityManager,
  fact: { occupation_id: number; version: number }
): Promise<boolean> {
  const rows = await sql(
    em,
    `insert into occupation_replica (id, name, version, deleted) values (?, '', ?, true)
     on conflict (id) do update set version = excluded.version, deleted = true
     where occupation_replica.version < excluded.version returning id`,
    [fact.occupation_id, fact.version]
  )
  return rows.length > 0
}

export async function applyGroup(em: EntityManager, fact: GroupFact): Promise<void> {
  await sql(
    em,
    `insert into group_replica (id, name, location, contact_phone, version, deleted) values (?, ?, ?, ?, ?, false)
     on conflict (id) do update set name = excluded.name, location = excluded.location,
       contact_phone = excluded.contact_phone, version = excluded.version, deleted = false
     where group_replica.version < excluded.version`,
    [fact.group_id, fact.name, fact.location, fact.contact_phone, fact.version]
  )
}

/** Whether this deletion was news (the tombstone written now). */
export async function tombstoneGroup(em: EntityManager, fact: { group_id: number; version: number }): Promise<boolean> {
  const rows = await sql(
    em,
    `insert into group_replica (id, name, version, deleted) values (?, '', ?, true)
     on conflict (id) do update set version = excluded.version, deleted = true
     where group_replica.version < excluded.version returning id`,
    [fact.group_id, fact.version]
  )
  return rows.length > 0
}

/**
 * The occupation's state; with `lock` (inside a transaction), its row share-locked until the transaction ends, so
 * its deletion waits for the caller's write or is seen here.
 */
export async function occupationState(em: EntityManager, id: number, lock = false): Promise<ReplicaState> {
  const lockMode = lock ? LockMode.PESSIMISTIC_READ : undefined
  return stateOf(
    await em.findOne(OccupationReplicaEntity, { id }, { fields: ['deleted'], lockMode, disableIdentityMap: true })
  )
}

/** The group's state; `lock` as for `occupationState`. */
export async function groupState(em: EntityManager, id: number, lock = false): Promise<ReplicaState> {
  const lockMode = lock ? LockMode.PESSIMISTIC_READ : undefined
  return stateOf(
    await em.findOne(GroupReplicaEntity, { id }, { fields: ['deleted'], lockMode, disableIdentityMap: true })
  )
}

/** One page of these groups (live ones), id ascending, flattened as `GET /api/users/{pk}/groups/` shows them. */
export async function groupsPage(
  em: EntityManager,
  ids: number[],
  page: Page
): Promise<{
  rows: { id: number; name: string; location: string | null; contact_phone: string | null }[]
  total: number
}> {
  if (ids.length === 0) return { rows: [], total: 0 }
  const [groups, total] = await em.findAndCount(
    GroupReplicaEntity,
    { id: { $in: ids }, deleted: false },
    { orderBy: { id: 'asc' }, limit: page.limit, offset: page.offset, disableIdentityMap: true }
  )
  return {
    rows: groups.map((g) => ({ id: g.id, name: g.name, location: g.location, contact_phone: g.contactPhone })),
    total
  }
}
