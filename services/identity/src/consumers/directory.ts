import type { EntityManager } from '@mikro-orm/postgresql'
import type { ConsumerSpec } from '@roster/service-kit'
import type { DirectoryReplica } from '../domain/directory-replica.js'

/** Keeps identity's replica of groups and occupations, and runs the cascades their deletion implies. */
export function directoryConsumer(
  replica: () => DirectoryReplica,
  emitRemoved: (em: EntityManager, groupId: number, userIds: number[]) => Promise<void>
): ConsumerSpec {
  return {
    durable: 'identity-directory',
    stream: 'DIRECTORY',
    handlers: {
      'directory.occupation.created': (fact, _event, em) => replica().applyOccupation(em, fact),
      'directory.occupation.updated': (fact, _event, em) => replica().applyOccupation(em, fact),
      'directory.occupation.deleted': (fact, _event, em) => replica().deleteOccupation(em, fact),
      'directory.group.created': (fact, _event, em) => replica().applyGroup(em, fact),
      'directory.group.updated': (fact, _event, em) => replica().applyGroup(em, fact),
      'directory.group.deleted': async (fact, _event, em) => {
        const removed = await replica().deleteGroup(em, fact)
        await emitRemoved(em, fact.group_id, removed)
      }
    }
  }
}
