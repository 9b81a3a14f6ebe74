import type { EntityManager } from '@mikro-orm/postgresql'
import { LockMode } from '@mikro-orm/core'
import { preparedQuery, preparedRows, type Page, type Reads } from '@roster/service-kit'
import { BlackListEntity, type BlackListRow } from '../entities/index.js'

export interface BlackListFilter {
  patient?: number
  includeDeleted?: boolean
}

// The list's columns, in this order (rows come as arrays, see preparedRows). Times leave SQL as epoch
// milliseconds: the driver would hand timestamptz over as text.
type RawEntry = [
  id: number,
  patientId: number,
  joinMs: number,
  isDelete: number,
  reason: string,
  creatorId: number,
  total: string
]

/**
 * One page of the blacklist, newest first (`join_time`, then `id`, descending), and the total count.
 * Raw SQL, a named statement: the list is a hot read (issue 10); one statement (`count(*) over ()`), rows
 * (as arrays) mapped straight to BlackListRow, no entities or hydration.
 * Measured (scripts/read-cpu.ts, page of 20): 231 µs Node CPU against 1970 µs for em.findAndCount.
 */
export async function listBlackList(
  em: Reads,
  filter: BlackListFilter,
  page: Page
): Promise<{ rows: BlackListRow[]; total: number }> {
  const conditions: string[] = []
  const params: unknown[] = []
  if (!filter.includeDeleted) conditions.push('is_delete = 0')
  if (filter.patient !== undefined) {
    params.push(filter.patient)
    conditions.push(`patient_id = $${params.length}`)
  }
  const where = conditions.length ? `where ${conditions.join(' and ')}` : ''
  // One statement name per shape of the query (which filters are present).
  const shape = `${filter.includeDeleted ? 'all' : 'active'}${filter.patient === undefined ? '' : '_patient'}`
  const raw = (await preparedRows(
    em,
    `audit_black_list_${shape}`,
    `select id, patient_id, (extract(epoch from join_time) * 1000)::float8 as join_ms, is_delete, reason, creator_id,
            count(*) over () as total
       from black_list ${where} order by join_time desc, id desc
      limit $${params.length + 1} offset $${params.length + 2}`,
    [...params, page.limit, page.offset]
  )) as RawEntry[]
  const rows = raw.map((r) => ({
    id: r[0],
    patient: r[1],
    joinTime: new Date(r[2]),
    isDelete: r[3],
    reason: r[4],
    creator: r[5]
  }))
  if (raw.length) return { rows, total: Number(raw[0][6]) }
  // past the last page there is no row to carry the count
  if (page.offset === 0) return { rows, total: 0 }
  const [count] = await preparedQuery<{ n: string }>(
    em,
    `audit_black_list_count_${shape}`,
    `select count(*) as n from black_list ${where}`,
    params
  )
  return { rows, total: Number(count.n) }
}

/** The patient has an entry in force. */
export async function isListed(em: EntityManager, patient: number): Promise<boolean> {
  return (await em.count(BlackListEntity, { patient, isDelete: 0 })) > 0
}

/** A new entry in force; the partial unique index refuses a second one for the patient (a race). */
export async function addEntry(
  em: EntityManager,
  entry: Pick<BlackListRow, 'patient' | 'reason' | 'creator'>
): Promise<BlackListRow> {
  const row = em.create(BlackListEntity, { ...entry, isDelete: 0, joinTime: new Date() })
  await em.flush()
  return row
}

export async function findEntry(em: EntityManager, id: number): Promise<BlackListRow | null> {
  return em.findOne(BlackListEntity, { id })
}

/** Sets the reason under the row's lock, in `em`'s transaction; null when the entry does not exist. */
export async function changeReason(em: EntityManager, id: number, reason: string): Promise<BlackListRow | null> {
  const entry = await em.findOne(BlackListEntity, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE })
  if (!entry) return null
  entry.reason = reason
  await em.flush()
  return entry
}

/**
 * Removes an entry (soft: `is_delete` becomes 1, the row stays). Idempotent, and one statement, so parallel
 * removals cannot race; false when the entry does not exist.
 */
export async function removeEntry(em: EntityManager, id: number): Promise<boolean> {
  return (await em.nativeUpdate(BlackListEntity, { id }, { isDelete: 1 })) > 0
}
