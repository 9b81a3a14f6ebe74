import type { EntityManager } from '@mikro-orm/postgresql'
import type { Page } from '@roster/service-kit'
import type { BlackListRow } from '../entities/index.js'

// Times leave SQL as epoch milliseconds: the driver hands timestamptz over as text.
interface RawEntry {
  id: number
  patient_id: number
  join_ms: string | number
  is_delete: number
  reason: string
  creator_id: number
  total: string
}

/**
 * One page of the blacklist, newest first (`join_time`, then `id`, descending), and the total count:
 * one statement (`count(*) over ()`), rows mapped straight to BlackListRow instead of findAndCount and
 * entity hydration.
 */
export async function listBlackList(
  em: EntityManager,
  filter: { patient?: number; includeDeleted?: boolean },
  page: Page
): Promise<{ rows: BlackListRow[]; total: number }> {
  const conditions: string[] = []
  const params: unknown[] = []
  if (!filter.includeDeleted) conditions.push('is_delete = 0')
  if (filter.patient !== undefined) {
    conditions.push('patient_id = ?')
    params.push(filter.patient)
  }
  const where = conditions.length ? `where ${conditions.join(' and ')}` : ''
  const connection = em.getConnection()
  const raw = await connection.execute<RawEntry[]>(
    `select id, patient_id, extract(epoch from join_time) * 1000 as join_ms, is_delete, reason, creator_id, count(*) over () as total
       from black_list ${where} order by join_time desc, id desc limit ? offset ?`,
    [...params, page.limit, page.offset],
    'all',
    em.getTransactionContext()
  )
  // past the last page there is no row to carry the count
  const total = raw.length
    ? Number(raw[0].total)
    : page.offset === 0
      ? 0
      : Number((await connection.execute<{ total: string }[]>(`select count(*) as total from black_list ${where}`, params, 'all', em.getTransactionContext()))[0].total)
  const rows = raw.map((r) => ({
    id: r.id,
    patient: r.patient_id,
    joinTime: new Date(Number(r.join_ms)),
    isDelete: r.is_delete,
    reason: r.reason,
    creator: r.creator_id
  }))
  return { rows, total }
}
