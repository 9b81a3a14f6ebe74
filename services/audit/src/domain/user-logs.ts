import type { EntityManager } from '@mikro-orm/postgresql'
import type { FilterQuery } from '@mikro-orm/core'
import { OPERATION_LOGIN_FAILED, type UserLog } from '@roster/contracts'
import { formatTime, type Page } from '@roster/service-kit'
import { UserLogEntity, type UserLogRow } from '../entities/index.js'

/** A log row as the consumer writes it: the envelope's time as it came, no id yet. */
export type NewUserLog = Omit<UserLogRow, 'id' | 'operateTime'> & { operateTime: string }

/** PostgreSQL text cannot hold NUL, which JSON can; dropped so that such an event is logged, not parked. */
export const pgText = (value: string, max = Infinity) => value.replace(/\u0000/g, '').slice(0, max)

const run = (em: EntityManager, sql: string, params: unknown[]) =>
  em.getConnection().execute<{ affectedRows: number }>(sql, params, 'run', em.getTransactionContext())

/**
 * Writes one log row in the consumer's transaction. The kit already skips an event it has processed;
 * the unique `event_id` is a second guard (a renamed durable replaying the stream, say). The totals
 * behind `X-Total-Count` follow through triggers (see the migration).
 */
export async function recordUserLog(em: EntityManager, log: NewUserLog): Promise<void> {
  await run(
    em,
    `insert into user_log (event_id, user_id, username, ip, operation, operator_id, operate_time, user_agent)
     values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (event_id) do nothing`,
    [log.eventId, log.user, pgText(log.username, 150), pgText(log.ip, 128), log.operation, log.operator, log.operateTime, pgText(log.userAgent, 1024)]
  )
}

export interface LogFilter {
  user?: number
  operation?: number
  since?: Date
  until?: Date
}

/** Newest first; failed attempts (operation 2) only when asked for by `operation`. */
export async function listUserLogs(em: EntityManager, filter: LogFilter, page: Page): Promise<{ rows: UserLogRow[]; total: number }> {
  const where: FilterQuery<UserLogRow> = {
    // `operation < 2` is the predicate of the list index (see the migration).
    operation: filter.operation ?? { $lt: OPERATION_LOGIN_FAILED }
  }
  if (filter.user !== undefined) where.user = filter.user
  if (filter.since || filter.until) {
    where.operateTime = {
      ...(filter.since ? { $gte: filter.since } : {}),
      ...(filter.until ? { $lte: filter.until } : {})
    }
  }
  // One statement, rows mapped straight to UserLogRow: no entities, identity map or hydration.
  const conditions = [filter.operation === undefined ? `operation < ${OPERATION_LOGIN_FAILED}` : 'operation = ?']
  const params: unknown[] = filter.operation === undefined ? [] : [filter.operation]
  const add = (condition: string, value: unknown) => {
    conditions.push(condition)
    params.push(value)
  }
  if (filter.user !== undefined) add('user_id = ?', filter.user)
  if (filter.since) add('operate_time >= ?', filter.since)
  if (filter.until) add('operate_time <= ?', filter.until)
  const raw = await em.getConnection().execute<RawLogRow[]>(
    `select id, event_id, user_id, username, ip, operation, operator_id, extract(epoch from operate_time) * 1000 as operate_ms, user_agent
       from user_log where ${conditions.join(' and ')} order by operate_time desc, id desc limit ? offset ?`,
    [...params, page.limit, page.offset],
    'all',
    em.getTransactionContext()
  )
  const rows: UserLogRow[] = raw.map((r) => ({
    id: r.id,
    eventId: r.event_id,
    user: r.user_id,
    username: r.username,
    ip: r.ip,
    operation: r.operation,
    operator: r.operator_id,
    operateTime: new Date(Number(r.operate_ms)),
    userAgent: r.user_agent
  }))
  return { rows, total: await countUserLogs(em, filter, where, page, rows.length) }
}

// Times leave SQL as epoch milliseconds: the driver hands timestamptz over as text.
interface RawLogRow {
  id: number
  event_id: string
  user_id: number | null
  username: string
  ip: string
  operation: number
  operator_id: number | null
  operate_ms: string | number
  user_agent: string
}

async function countUserLogs(em: EntityManager, filter: LogFilter, where: FilterQuery<UserLogRow>, page: Page, found: number): Promise<number> {
  // A page that is not full ends the list, so it tells the total without counting.
  if (found > 0 && found < page.limit) return page.offset + found
  if (page.offset === 0 && found === 0) return 0
  if (filter.user === undefined && !filter.since && !filter.until) {
    const condition = filter.operation === undefined ? `operation < ${OPERATION_LOGIN_FAILED}` : `operation = ${Number(filter.operation)}`
    const [row] = await em
      .getConnection()
      .execute<{ total: string }[]>(`select coalesce(sum(total), 0) as total from user_log_total where ${condition}`)
    return Number(row.total)
  }
  return em.count(UserLogEntity, where)
}

export function renderUserLog(row: UserLogRow, timeZone: string): UserLog {
  const log: UserLog = {
    id: row.id,
    user: row.user,
    ip: row.ip,
    operation: row.operation,
    operator: row.operator,
    operate_time: formatTime(row.operateTime, timeZone),
    user_agent: row.userAgent
  }
  if (row.operation === OPERATION_LOGIN_FAILED) log.username = row.username
  return log
}
