import type { EntityManager } from '@mikro-orm/postgresql'
import type { FastifyBaseLogger } from 'fastify'
import { INTERNAL_PATHS } from '@roster/contracts'
import { isRowId, readThrough } from '@roster/service-kit'
import { applyUserFact, knownState } from '../repositories/known-users.js'
import { knownOrLogged } from '../repositories/user-logs.js'

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
    if (!isRowId(id)) return false
    const state = await knownState(em, id)
    if (state !== 'unknown') return state === 'live'
    return this.readThrough(em, id)
  }

  /**
   * A user whose log history may be read: one that exists, or one that existed and was deleted (its
   * history stays, so an admin can still read it).
   */
  async hasHistory(em: EntityManager, id: number): Promise<boolean> {
    if (!isRowId(id)) return false
    if (await knownOrLogged(em, id)) return true
    return this.readThrough(em, id)
  }

  private async readThrough(em: EntityManager, id: number): Promise<boolean> {
    const fact = await readThrough(this.identityUrl, INTERNAL_PATHS.user(id), 'identity.user.created', {
      timeoutMs: this.timeoutMs,
      log: this.log,
      id
    })
    if (fact === null) return false
    // The same upsert as the event's: a newer version or a tombstone already here stays.
    await applyUserFact(em, fact)
    return true
  }
}
