import type { EntityManager } from '@mikro-orm/postgresql'
import type { EventData, Group, GroupProfileInput } from '@roster/contracts'
import { formatTime, type Page } from '@roster/service-kit'
import { GroupEntity, GroupProfileEntity, type GroupProfileRow, type GroupRow } from '../entities/index.js'
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

/** One page of groups (id ascending) whose name contains `search`, with their profiles, and the total count. */
export async function listGroups(
  em: EntityManager,
  search: string | undefined,
  page: Page,
  timeZone: string
): Promise<{ groups: Group[]; total: number }> {
  const where = search ? { name: { $ilike: likePattern(search) } } : {}
  const [rows, total] = await em.findAndCount(GroupEntity, where, { orderBy: { id: 'asc' }, limit: page.limit, offset: page.offset })
  const profiles = rows.length ? await em.find(GroupProfileEntity, { group: { $in: rows.map((g) => g.id) } }) : []
  const profileOf = new Map(profiles.map((p) => [p.group, p]))
  return { groups: rows.map((g) => renderGroup(g, profileOf.get(g.id), timeZone)), total }
}
