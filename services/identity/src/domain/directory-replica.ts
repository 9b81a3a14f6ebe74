import type { EntityManager } from '@mikro-orm/postgresql'
import type { FastifyBaseLogger } from 'fastify'
import type { EventData, EventSubject } from '@roster/contracts'
import { INTERNAL_PATHS } from '@roster/contracts'
import { readThrough } from '@roster/service-kit'
import * as replica from '../repositories/replica.js'
import * as memberships from '../repositories/memberships.js'
import * as users from '../repositories/users.js'
import type { GroupFact, OccupationFact } from '../repositories/replica.js'

/**
 * Identity's replica of the directory's groups and occupations, fed by `DIRECTORY` events (see
 * `repositories/replica.ts` for how facts are applied), and the cascades a deletion implies. On a miss, the
 * owner is asked once over internal HTTP, so a client never sees a false "does not exist".
 */
export class DirectoryReplica {
  constructor(
    private readonly directoryUrl: string,
    private readonly log: FastifyBaseLogger
  ) {}

  applyOccupation(em: EntityManager, fact: OccupationFact): Promise<void> {
    return replica.applyOccupation(em, fact)
  }

  /** The occupation's tombstone; the first time, it leaves every profile that had it. */
  async deleteOccupation(em: EntityManager, fact: { occupation_id: number; version: number }): Promise<void> {
    if (await replica.tombstoneOccupation(em, fact)) await users.clearOccupation(em, fact.occupation_id)
  }

  applyGroup(em: EntityManager, fact: GroupFact): Promise<void> {
    return replica.applyGroup(em, fact)
  }

  /** The group's tombstone; the first time, its memberships go: answers the users that lost one. */
  async deleteGroup(em: EntityManager, fact: { group_id: number; version: number }): Promise<number[]> {
    if (!(await replica.tombstoneGroup(em, fact))) return []
    return memberships.removeGroup(em, fact.group_id)
  }

  async occupationExists(em: EntityManager, id: number): Promise<boolean> {
    const state = await replica.occupationState(em, id)
    if (state !== 'absent') return state === 'live'
    const fact = await this.readThrough(INTERNAL_PATHS.occupation(id), 'directory.occupation.created', id)
    if (!fact) return false
    await replica.applyOccupation(em, fact)
    return true
  }

  async groupExists(em: EntityManager, id: number): Promise<boolean> {
    const state = await replica.groupState(em, id)
    if (state !== 'absent') return state === 'live'
    const fact = await this.readThrough(INTERNAL_PATHS.group(id), 'directory.group.created', id)
    if (!fact) return false
    await replica.applyGroup(em, fact)
    return true
  }

  /**
   * Inside a writing transaction: whether the occupation is live, its replica row share-locked until the
   * transaction ends, so its deletion (the tombstone, which then clears it from every profile) either waits
   * for the caller's write or is seen here.
   */
  async lockOccupation(t: EntityManager, id: number): Promise<boolean> {
    return (await replica.occupationState(t, id, true)) === 'live'
  }

  /** As `lockOccupation`, for a group (whose tombstone then drops its memberships). */
  async lockGroup(t: EntityManager, id: number): Promise<boolean> {
    return (await replica.groupState(t, id, true)) === 'live'
  }

  private readThrough<S extends EventSubject>(path: string, carries: S, id: number): Promise<EventData<S> | null> {
    return readThrough(this.directoryUrl, path, carries, { timeoutMs: 2000, log: this.log, id })
  }
}
