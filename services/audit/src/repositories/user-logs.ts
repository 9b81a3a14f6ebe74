import type { EntityManager } from '@mikro-orm/postgresql'
import { OPERATION_LOGIN_FAILED } from '@roster/contracts'
import { isRowId, preparedQuery, preparedRows, sql, type Page, type Reads } from '@roster/service-kit'
import { UserLogEntity, type UserLogRow } from '../entities/index.js'
import { pgText } from './text.js'

/** A log row as lists show it (the event id stays inside). */
export type ListedUserLog = Omit<UserLogRow, 'eventId'>

/** A log row as the consumer writes it: the envelope's time as it came, no id yet. */
export type NewUserLog = Omit<UserLogRow, 'id' | 'operateTime'> & { operateTime: string }

export interface LogFilter {
  user?: number
  operation?: number
  since?: Date
  until?: Date
}

/** A position in the list (newest first): the rows after it are older, or as old with a smaller id. */
export interface LogCursor {
  /** `operate_time` in microseconds since the epoch, exact (a JavaScript Date holds milliseconds only). */
  micros: bigint
  id: number
}

/** The opaque `cursor` of the API: base64url of `micros.id`. */
export function encodeCursor(cursor: LogCursor): string {
  return Buffer.from(`${cursor.micros}.${cursor.id}`).toString('base64url')
}

/** The position a `cursor` names, or null when it is not one this service made (`''`: the top of the list). */
export function decodeCursor(text: string): LogCursor | null | 'top' {
  if (text === '') return 'top'
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return null
  const match = /^(-?\d{1,17})\.(\d{1,10})$/.exec(Buffer.from(text, 'base64url').toString('latin1'))
  const id = match ? Number(match[2]) : NaN
  if (!match || id > 2147483647) return null
  return { micros: BigInt(match[1]), id }
}

/**
 * Writes one log row in the consumer's transaction. The kit already skips an event it has processed; the
 * unique `(event_id, operate_time)` is a second guard (a renamed durable replaying the stream, say: the
 * event's time comes with it). The totals behind
 * `X-Total-Count` follow through triggers (see the migrations).
 */
export async function recordUserLog(em: EntityManager, log: NewUserLog): Promise<void> {
  await em
    .createQueryBuilder(UserLogEntity)
    .insert({
      eventId: log.eventId,
      user: log.user,
      username: pgText(log.username, 150),
      ip: pgText(log.ip, 128),
      operation: log.operation,
      operator: log.operator,
      operateTime: new Date(log.operateTime),
      userAgent: pgText(log.userAgent, 1024)
    })
    .onConflict(['eventId', 'operateTime'])
    .ignore()
    .execute('run')
}

/**
 * One log row by id, or null: a named statement (the id is not the partition key, so each monthly partition's
 * key is probed; unprepared, the statement was planned anew over every partition each time).
 */
export async function findUserLog(em: Reads, id: number): Promise<ListedUserLog | null> {
  if (!isRowId(id)) return null
  const [row] = (await preparedRows(em, 'audit_user_log_by_id', `select ${LIST_COLUMNS} from user_log where id = $1`, [
    id
  ])) as RawLogRow[]
  return row ? listedLog(row) : null
}

/**
 * Audit knows the user (live or deleted) or holds a log row of theirs (a deleted user's history stays
 * readable): one named statement outside a transaction. Unprepared, the look-up of a log row across the
 * monthly partitions was planned anew every time (2.4 ms of PostgreSQL at 12 partitions), and one user's
 * logs were served at a fifth of the rate of `?user` for it.
 */
export async function knownOrLogged(em: Reads, user: number): Promise<boolean> {
  const [row] = await preparedQuery<{ found: boolean }>(
    em,
    'audit_known_or_logged',
    'select exists (select 1 from known_user where id = $1) or exists (select 1 from user_log where user_id = $1) as found',
    [user]
  )
  return row.found
}

// The list's columns, in this order (rows come as arrays). Times leave SQL as epoch microseconds (exact, for
// the cursor; the driver would hand timestamptz over as text).
const LIST_COLUMNS = `id, user_id, username, ip, operation, operator_id,
                      (extract(epoch from operate_time) * 1000000)::bigint as operate_us, user_agent`
type RawLogRow = [
  id: number,
  userId: number | null,
  username: string,
  ip: string,
  operation: number,
  operatorId: number | null,
  operateUs: string,
  userAgent: string,
  total?: string
]

/** A row of LIST_COLUMNS as the lists show it. */
function listedLog(r: RawLogRow): ListedUserLog {
  return {
    id: r[0],
    user: r[1],
    username: r[2],
    ip: r[3],
    operation: r[4],
    operator: r[5],
    operateTime: new Date(Math.floor(Number(r[6]) / 1000)),
    userAgent: r[7]
  }
}

/** The largest page the contract allows (`limit` ≤ 1000). */
const MAX_LIMIT = 1000

/** The where clause of a filter (`?` placeholders), its values, and a name for its shape. */
function whereOf(filter: LogFilter, extra: { condition: string; values: unknown[] }[] = []) {
  const conditions: string[] = []
  const values: unknown[] = []
  const add = (condition: string, ...vs: unknown[]) => {
    conditions.push(condition)
    values.push(...vs)
  }
  // `operation < 2` is the predicate of the list index (see the migration): failed attempts only when asked for.
  if (filter.operation === undefined) add(`operation < ${OPERATION_LOGIN_FAILED}`)
  else add('operation = ?', filter.operation)
  if (filter.user !== undefined) add('user_id = ?', filter.user)
  if (filter.since) add('operate_time >= ?', filter.since)
  if (filter.until) add('operate_time <= ?', filter.until)
  for (const e of extra) add(e.condition, ...e.values)
  const shape =
    ['operation', 'user', 'since', 'until'].filter((k) => filter[k as keyof LogFilter] !== undefined).join('_') || 'all'
  return { where: conditions.join(' and '), values, shape }
}

/** `?` placeholders numbered for pg (`$1`, `$2`, …). */
function numbered(text: string): string {
  let n = 0
  return text.replace(/\?/g, () => `$${++n}`)
}

/**
 * One page of logs, newest first, the total, and the cursor of the page after it (when this one is full).
 * With a cursor the page starts after that position (an index range read at any depth) and `page.offset`
 * is not used. Raw SQL, named statements: the list is a hot read (issue 10); rows are mapped straight to
 * ListedUserLog, no entities, identity map or hydration.
 * Measured (scripts/read-cpu.ts, page of 100 and total): 1172 µs Node CPU; query builder 1750; em.find 4583.
 */
export async function listUserLogs(
  em: Reads,
  filter: LogFilter,
  page: Page,
  cursor?: LogCursor | 'top'
): Promise<{ rows: ListedUserLog[]; total: number; next?: LogCursor }> {
  const after = typeof cursor === 'object' ? cursor : undefined
  const { where, values, shape } = whereOf(
    filter,
    after
      ? [
          {
            condition: "(operate_time, id) < (timestamptz 'epoch' + ?::bigint * interval '1 microsecond', ?)",
            values: [after.micros.toString(), after.id]
          }
        ]
      : []
  )
  // A page from the top of its range (the first page, or any page by cursor) reads the newest MAX_LIMIT rows
  // and takes `limit` of them: PostgreSQL then keeps one generic plan for the statement. With a bare
  // `limit $n offset $m` the generic plan's guess of both (a tenth of the table) always looked dearer than a
  // plan made for the values, so the statement was planned anew on every call, over every monthly partition:
  // 327 against 150 µs of PostgreSQL CPU per default page (5 partitions, `plan_cache_mode` forced either way).
  const fromTop = (cursor !== undefined || page.offset === 0) && page.limit <= MAX_LIMIT
  // Filtered by operation alone (the default list), the total is the sum of the per-day totals: read by the
  // same statement, one round trip instead of two (used only when the page is full, as countUserLogs says).
  const totals =
    filter.user === undefined && !filter.since && !filter.until ? whereOf({ operation: filter.operation }) : null
  const totalColumn = totals
    ? `, (select coalesce(sum(total), 0) from user_log_total where ${totals.where}) as total`
    : ''
  const order = 'order by operate_time desc, id desc'
  const text = fromTop
    ? `select id, user_id, username, ip, operation, operator_id, operate_us, user_agent${totalColumn}
         from (select ${LIST_COLUMNS}, operate_time from user_log where ${where} ${order} limit ${MAX_LIMIT}) top
        ${order} limit ?`
    : `select ${LIST_COLUMNS}${totalColumn} from user_log where ${where} ${order} limit ? offset ?`
  // placeholders in the order of the text: the total's (select list), the filter's, the page's
  const raw = (await preparedRows(
    em,
    `audit_user_logs_${shape}${after ? '_after' : ''}${fromTop ? '_top' : ''}${totals ? '_total' : ''}`,
    numbered(text),
    [
      ...(totals ? totals.values : []),
      ...values,
      ...(fromTop ? [page.limit] : [page.limit, cursor === undefined ? page.offset : 0])
    ]
  )) as RawLogRow[]
  const rows = raw.map(listedLog)
  const last = raw.length === page.limit ? raw[raw.length - 1] : undefined
  const next = cursor !== undefined && last ? { micros: BigInt(last[6]), id: last[0] } : undefined
  // A cursor page counts the whole filtered list, as an offset page does.
  const total = await countUserLogs(
    em,
    filter,
    cursor === undefined ? page : { limit: page.limit, offset: 0 },
    after ? page.limit : rows.length,
    raw.length && raw[0][8] !== undefined ? Number(raw[0][8]) : undefined
  )
  return { rows, total, next }
}

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000
const floorTo = (time: Date, unit: number) => new Date(Math.floor(time.getTime() / unit) * unit)
const ceilTo = (time: Date, unit: number) => new Date(Math.ceil(time.getTime() / unit) * unit)

/**
 * `X-Total-Count`. A page that is not full tells it without counting; `summed` is the sum of the per-day totals
 * when the list's statement read it (no user, `since` or `until`); one user's rows are counted (a few
 * thousand at most), and so is a window shorter than two hours. Otherwise the totals kept by triggers give
 * the window's whole UTC days (`user_log_total`) and the whole hours of its edge days (`user_log_hour_total`),
 * and only the rows of the two edge hours (`since`'s and `until`'s) are counted: a count reads at most two
 * hours of the log at any table size.
 */
async function countUserLogs(
  em: Reads,
  filter: LogFilter,
  page: Page,
  found: number,
  summed?: number
): Promise<number> {
  if (found > 0 && found < page.limit) return page.offset + found
  if (page.offset === 0 && found === 0) return 0
  // the list's statement read the per-day totals already (filtered by operation alone)
  if (summed !== undefined) return summed
  const { since, until } = filter
  if (filter.user !== undefined || (since && until && until.getTime() - since.getTime() < 2 * HOUR_MS)) {
    const { where, values, shape } = whereOf(filter)
    return countOf(em, `audit_user_logs_count_${shape}`, `select count(*) as n from user_log where ${where}`, values)
  }
  // The window [since, until] in pieces: rows of [since, h1), hours of [h1, d1), days of [d1, d2), hours of
  // [d2, h2), rows of [h2, until]; an open end has no edge rows and no hours on its side. When no whole day
  // lies between the edge hours, the hours of [h1, h2) alone.
  const h1 = since && ceilTo(since, HOUR_MS)
  const h2 = until && floorTo(until, HOUR_MS)
  const d1 = h1 && ceilTo(h1, DAY_MS)
  const d2 = h2 && floorTo(h2, DAY_MS)
  const days = !d1 || !d2 || d1 < d2
  const parts: string[] = []
  const values: unknown[] = []
  const add = (part: string, where: { where: string; values: unknown[] }) => {
    parts.push(`select ${part} where ${where.where}`)
    values.push(...where.values)
  }
  const condition = (text: string, value: unknown) => ({ condition: text, values: [value] })
  const sum = (table: string, conditions: { condition: string; values: unknown[] }[]) =>
    add(`coalesce(sum(total), 0) from ${table}`, whereOf({ operation: filter.operation }, conditions))
  if (days) {
    sum('user_log_total', [
      ...(d1 ? [condition("day >= (?::timestamptz at time zone 'UTC')::date", d1)] : []),
      ...(d2 ? [condition("day < (?::timestamptz at time zone 'UTC')::date", d2)] : [])
    ])
    if (h1 && d1) sum('user_log_hour_total', [condition('hour >= ?', h1), condition('hour < ?', d1)])
    if (h2 && d2) sum('user_log_hour_total', [condition('hour >= ?', d2), condition('hour < ?', h2)])
  } else {
    sum('user_log_hour_total', [condition('hour >= ?', h1), condition('hour < ?', h2)])
  }
  if (since && h1)
    add('count(*) from user_log', whereOf({ operation: filter.operation, since }, [condition('operate_time < ?', h1)]))
  if (until && h2) add('count(*) from user_log', whereOf({ operation: filter.operation, since: h2, until }))
  const shape = `${filter.operation === undefined ? 'shown' : 'operation'}${since ? '_since' : ''}${until ? '_until' : ''}${days ? '' : '_hours'}`
  return countOf(em, `audit_user_logs_total_${shape}`, `select ${parts.map((p) => `(${p})`).join(' + ')} as n`, values)
}

/** A count, as a named statement outside a transaction (the list's hot path) or in the transaction `em` is in. */
async function countOf(em: Reads, name: string, text: string, values: unknown[]): Promise<number> {
  const rows = em.getTransactionContext()
    ? await sql<{ n: string }>(em, text, values)
    : await preparedQuery<{ n: string }>(em, name, numbered(text), values)
  return Number(rows[0].n)
}
