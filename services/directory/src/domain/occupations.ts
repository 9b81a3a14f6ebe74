import type { EntityManager } from '@mikro-orm/postgresql'
import type { EventData, Occupation } from '@roster/contracts'
import { likePattern, type Page } from '@roster/service-kit'
import type { OccupationRow } from '../entities/index.js'

export type OccupationFact = EventData<'directory.occupation.created'>

export function renderOccupation(occupation: OccupationRow): Occupation {
  return { id: occupation.id, name: occupation.name }
}

/** What `directory.occupation.*` events and the internal read-through carry. */
export function occupationFact(occupation: OccupationRow): OccupationFact {
  return { occupation_id: occupation.id, version: occupation.version, name: occupation.name }
}

/**
 * One page of occupations (id ascending) whose name contains `search`, and the total count: one statement,
 * rows straight from pg (no entities; `pnpm bench cpu`: directory's CPU per `GET /api/occupations/` of 40
 * fell from 3.4 ms to 0.65 ms).
 */
export async function listOccupations(em: EntityManager, search: string | undefined, page: Page): Promise<{ occupations: Occupation[]; total: number }> {
  const connection = em.getConnection()
  const where = search ? 'where name ilike ?' : ''
  const params = search ? [likePattern(search)] : []
  const rows = await connection.execute<Array<Occupation & { total: string }>>(
    `select id, name, count(*) over () as total from occupation ${where} order by id limit ? offset ?`,
    [...params, page.limit, page.offset],
    'all',
    em.getTransactionContext()
  )
  // past the last page there is no row to carry the count
  const total = rows.length
    ? Number(rows[0].total)
    : page.offset === 0
      ? 0
      : Number((await connection.execute<{ total: string }[]>(`select count(*) as total from occupation ${where}`, params, 'all', em.getTransactionContext()))[0].total)
  return { occupations: rows.map((r) => ({ id: r.id, name: r.name })), total }
}
