import type { EventData, Occupation } from '@roster/contracts'
import type { OccupationRow } from '../entities/index.js'

export type OccupationFact = EventData<'directory.occupation.created'>

export function renderOccupation(occupation: Pick<OccupationRow, 'id' | 'name'>): Occupation {
  return { id: occupation.id, name: occupation.name }
}

/** What `directory.occupation.*` events and the internal read-through carry. */
export function occupationFact(occupation: OccupationRow): OccupationFact {
  return { occupation_id: occupation.id, version: occupation.version, name: occupation.name }
}
