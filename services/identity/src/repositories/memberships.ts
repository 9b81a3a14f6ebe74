import type { EntityManager } from '@mikro-orm/postgresql'
import { sql } from '@roster/service-kit'
import { MembershipEntity } from '../entities/index.js'

/** Group memberships (`membership`): the only module that reads or writes the table. */

/**
 * Adds these users to the group; answers those that were not members yet. Raw: one `insert … on conflict do
 * nothing returning` for the whole list; MikroORM's `upsertMany` cannot tell which rows it inserted.
 */
export async function add(em: EntityManager, groupId: number, userIds: number[]): Promise<number[]> {
  // Knex would spread a JS array into a list; a PostgreSQL array literal binds as one value.
  const rows = await sql<{ user_id: number }>(
    em,
    'insert into membership (group_id, user_id) select ?, unnest(?::int[]) on conflict do nothing returning user_id',
    [groupId, `{${userIds.join(',')}}`]
  )
  return rows.map((r) => r.user_id)
}

/** Whether the user was a member (and no longer is). */
export async function remove(em: EntityManager, groupId: number, userId: number): Promise<boolean> {
  return (await em.nativeDelete(MembershipEntity, { group: groupId, user: userId })) > 0
}

/**
 * Drops every membership of a deleted group and answers the users that had one. The caller holds the group's
 * replica row locked (its tombstone), so no membership is added meanwhile.
 */
export async function removeGroup(em: EntityManager, groupId: number): Promise<number[]> {
  const members = await em.find(MembershipEntity, { group: groupId }, { fields: ['user'], disableIdentityMap: true })
  if (members.length === 0) return []
  await em.nativeDelete(MembershipEntity, { group: groupId })
  return members.map((m) => m.user)
}

/** The ids of the groups the user belongs to. */
export async function groupIdsOf(em: EntityManager, userId: number): Promise<number[]> {
  const rows = await em.find(MembershipEntity, { user: userId }, { fields: ['group'], disableIdentityMap: true })
  return rows.map((r) => r.group)
}
