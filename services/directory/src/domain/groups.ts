import type { EventData, Group, GroupProfileInput } from '@roster/contracts'
import { formatTime } from '@roster/service-kit'
import type { GroupProfileRow, GroupRow } from '../entities/index.js'

export type GroupFact = EventData<'directory.group.created'>

/** A group as the API shows it (one page of the list, one group, the answer to a write). */
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
export function applyGroupProfile<T extends Partial<GroupProfileRow>>(target: T, input: GroupProfileInput): T {
  if (input.location !== undefined) target.location = input.location
  if (input.contact_phone !== undefined) target.contactPhone = input.contact_phone
  return target
}
