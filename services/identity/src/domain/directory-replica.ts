import type { EntityManager } from '@mikro-orm/postgresql'
import type { FastifyBaseLogger } from 'fastify'
import type { EventData, EventSubject } from '@roster/contracts'
import { INTERNAL_PATHS } from '@roster/contracts'
import { readThrough } from '@roster/service-kit'

type OccupationFact = EventData<'directory.occupation.created'>
type GroupFact = EventData<'directory.group.created'>

const run = (em: EntityManager, sql: string, params: unknown[]) =>
  em.getConnection().execute<{ affectedRows: number }>(sql, params, 'run', em.getTransactionContext())

/**
 * Identity's replica of the directory's groups and occupations, fed by `DIRECTORY` events. A fact is
 * applied only when its version is newer than the one held, so duplicates and out-of-order deliveries
 * have one effect; deletions leave a tombstone so a late update cannot bring a row back. On a miss, the
 * owner is asked once over internal HTTP, so a client never sees a false "does not exist".
 */
export class DirectoryReplica {
  constructor(
    private readonly directoryUrl: string,
    private readonly log: FastifyBaseLogger
  ) {}

  async applyOccupation(em: EntityManager, fact: OccupationFact): Promise<void> {
    await run(
      em,
      `insert into occupation_replica (id, name, version, deleted) values (?, ?, ?, false)
       on conflict (id) do update set name = excluded.name, version = excluded.version, deleted = false
       where occupation_replica.version < excluded.version`,
      [fact.occupation_id, fact.name, fact.version]
    )
  }

  async deleteOccupation(em: EntityManager, fact: { occupation_id: number; version: number }): Promise<void> {
    const result = await run(
      em,
      `insert into occupation_replica (id, name, version, deleted) values (?, '', ?, true)
       on conflict (id) do update set version = excluded.version, deleted = true
       where occupation_replica.version < excluded.version`,
      [fact.occupation_id, fact.version]
    )
    if (result.affectedRows > 0) {
      await run(em, 'update profile set occupation_id = null, modify_time = now() where occupation_id = ?', [fact.occupation_id])
    }
  }

  async applyGroup(em: EntityManager, fact: GroupFact): Promise<void> {
    await run(
      em,
      `insert into group_replica (id, name, location, contact_phone, version, deleted) values (?, ?, ?, ?, ?, false)
       on conflict (id) do update set name = excluded.name, location = excluded.location,
         contact_phone = excluded.contact_phone, version = excluded.version, deleted = false
       where group_replica.version < excluded.version`,
      [fact.group_id, fact.name, fact.location, fact.contact_phone, fact.version]
    )
  }

  async deleteGroup(em: EntityManager, fact: { group_id: number; version: number }): Promise<number[]> {
    const result = await run(
      em,
      `insert into group_replica (id, name, version, deleted) values (?, '', ?, true)
       on conflict (id) do update set version = excluded.version, deleted = true
       where group_replica.version < excluded.version`,
      [fact.group_id, fact.version]
    )
    if (result.affectedRows === 0) return []
    const removed = await em
      .getConnection()
      .execute<{ user_id: number }[]>(
        'delete from membership where group_id = ? returning user_id',
        [fact.group_id],
        'all',
        em.getTransactionContext()
      )
    return removed.map((r) => r.user_id)
  }

  async occupationExists(em: EntityManager, id: number): Promise<boolean> {
    const [row] = await em.getConnection().execute<{ deleted: boolean }[]>('select deleted from occupation_replica where id = ?', [id])
    if (row) return !row.deleted
    const fact = await this.readThrough(INTERNAL_PATHS.occupation(id), 'directory.occupation.created')
    if (!fact) return false
    await this.applyOccupation(em, fact)
    return true
  }

  async groupExists(em: EntityManager, id: number): Promise<boolean> {
    const [row] = await em.getConnection().execute<{ deleted: boolean }[]>('select deleted from group_replica where id = ?', [id])
    if (row) return !row.deleted
    const fact = await this.readThrough(INTERNAL_PATHS.group(id), 'directory.group.created')
    if (!fact) return false
    await this.applyGroup(em, fact)
    return true
  }

  private readThrough<S extends EventSubject>(path: string, carries: S): Promise<EventData<S> | null> {
    return readThrough(this.directoryUrl, path, carries, { timeoutMs: 2000, log: this.log })
  }
}
