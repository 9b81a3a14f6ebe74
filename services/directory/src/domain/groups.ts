import type { EntityManager } from '@mikro-orm/postgresql'
import type { EventData, Group, GroupProfileInput } from '@roster/contracts'
import { formatTime, type Page } from '@roster/service-kit'
import type { GroupProfileRow, GroupRow } from '../entities/index.js'
import { likePattern } from '@roster/service-kit'

export type GroupFact = EventData<'directory.group.created'>

export function renderGroup(group: GroupRow, profile: GroupProfileRow | null | undefined, timeZone: string): Group {
  return {
    id: group.id,
    name: group.name,
    profile: profile
      ? {
          location: profile.location,
          contact_phone: profile.contactPhone,
          create_time: formatTime(profile.createTime, timeZone),
          modify_time: formatTime(profile.modifyTime, timeZone),
          group: profile.group,
          creator: profile.creator,
          modifier: profile.modifier
        }
      : null
  }
}

/** What `directory.group.*` events and the internal read-through carry. */
export function groupFact(group: GroupRow, profile: GroupProfileRow | null | undefined): GroupFact {
  return {
    group_id: group.id,
    version: group.version,
    name: group.name,
    location: profile ? profile.location : null,
    contact_phone: profile ? profile.contactPhone : null
  }
}

/** Copies the profile fields sent onto `target`, trimmed as DRF's `CharField` does. */
export function applyGroupProfile(target: Partial<GroupProfileRow>, input: GroupProfileInput): Partial<GroupProfileRow> {
  if (input.location !== undefined) target.location = input.location.trim()
  if (input.contact_phone !== undefined) target.contactPhone = input.contact_phone.trim()
  return target
}

interface GroupListRow {
  id: number
  name: string
  location: string | null
  contact_phone: string | null
  creator_id: number | null
  modifier_id: number | null
  create_ms: string | number | null
  modify_ms: string | number | null
  total: string
}

/**
 * One page of groups (id ascending) whose name contains `search`, with their profiles, and the total count:
 * one statement, rows rendered straight from pg (no entities, identity map or hydration; `pnpm bench cpu`:
 * directory's CPU per `GET /api/groups/` of 20 fell from 7.0 ms to 1.2 ms).
 */
export async function listGroups(
  em: EntityManager,
  search: string | undefined,
  page: Page,
  timeZone: string
): Promise<{ groups: Group[]; total: number }> {
  const connection = em.getConnection()
  const where = search ? 'where g.name ilike ?' : ''
  const params = search ? [likePattern(search)] : []
  const rows = await connection.execute<GroupListRow[]>(
    `select g.id, g.name, p.location, p.contact_phone, p.creator_id, p.modifier_id,
            extract(epoch from p.create_time) * 1000 as create_ms, extract(epoch from p.modify_time) * 1000 as modify_ms,
            count(*) over () as total
       from app_group g left join group_profile p on p.group_id = g.id
       ${where} order by g.id limit ? offset ?`,
    [...params, page.limit, page.offset],
    'all',
    em.getTransactionContext()
  )
  const groups = rows.map((r) => ({
    id: r.id,
    name: r.name,
    profile:
      r.create_ms === null
        ? null
        : {
            location: r.location ?? '',
            contact_phone: r.contact_phone ?? '',
            create_time: formatTime(new Date(Number(r.create_ms)), timeZone),
            modify_time: formatTime(new Date(Number(r.modify_ms)), timeZone),
            group: r.id,
            creator: r.creator_id,
            modifier: r.modifier_id
          }
  }))
  // past the last page there is no row to carry the count
  const total = rows.length
    ? Number(rows[0].total)
    : page.offset === 0
      ? 0
      : Number(
          (await connection.execute<{ total: string }[]>(`select count(*) as total from app_group g ${where}`, params, 'all', em.getTransactionContext()))[0].total
        )
  return { groups, total }
}
