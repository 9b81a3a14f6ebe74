import type { EntityManager } from '@mikro-orm/postgresql'
import type { IsolationLevel } from '@mikro-orm/core'
import { ApiError, FieldErrors, NotFoundError, ValidationError } from './errors.js'
import type { MessageKey } from './messages.js'
import { preparedQuery, type Reads } from './plugins/orm.js'

/** `%text%` for `ilike`, with the pattern characters of `text` taken literally. */
export function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
}

/** What PostgreSQL (through pg, or wrapped by MikroORM, which copies the fields) says about a failed statement. */
interface DbError {
  code?: string
  constraint?: string
  detail?: string
  name?: string
}

/** The SQLSTATE of a database error, whether MikroORM wrapped it or not. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as DbError | undefined)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** A unique index refused the write (PostgreSQL 23505), whether MikroORM wrapped the error or not. */
export function isUniqueViolation(error: unknown): boolean {
  return sqlState(error) === '23505' || (error as Error)?.name === 'UniqueConstraintViolationException'
}

/** A foreign key refused the write (23503): the row referred to is gone, or never was. */
export function isForeignKeyViolation(error: unknown): boolean {
  return sqlState(error) === '23503' || (error as Error)?.name === 'ForeignKeyConstraintViolationException'
}

/** PostgreSQL asks for the transaction to be run again: a serialization failure (40001) or a deadlock (40P01). */
export function isRetryable(error: unknown): boolean {
  const state = sqlState(error)
  return state === '40001' || state === '40P01'
}

/**
 * What a violated constraint means to a client, one entry per constraint name in each service's table:
 * a field error (`{ field, key }`; `does_not_exist` gets the offending value as `input`), `'not_found'`
 * (a row the path names was deleted meanwhile), or an error of the service's choosing.
 */
export type ConstraintAnswer = { field: string | string[]; key: MessageKey } | 'not_found' | (() => ApiError)
export type ConstraintTable = Record<string, ConstraintAnswer>

/** The value a foreign-key violation names (`Key (user_id)=(12) is not present…`); never logged. */
function keyValue(detail: string | undefined): string | number | undefined {
  const value = /^Key \([^)]*\)=\((.*)\) is not present/.exec(detail ?? '')?.[1]
  if (value === undefined) return undefined
  return /^[0-9]{1,15}$/.test(value) ? Number(value) : value
}

/**
 * The client's error for a database error that a concurrent request caused, or `null` for anything else:
 * a unique violation is the field error the table names (else `409`), a foreign-key violation the table's
 * answer (else `404`: the row was deleted meanwhile), a serialization failure or deadlock that outlived
 * its retries `409`. Never a 500 for a race.
 */
export function constraintError(error: unknown, table: ConstraintTable = {}): ApiError | null {
  const unique = isUniqueViolation(error)
  const foreign = !unique && isForeignKeyViolation(error)
  if (unique || foreign) {
    const e = error as DbError
    const answer = e.constraint ? table[e.constraint] : undefined
    if (answer === 'not_found') return new NotFoundError()
    if (typeof answer === 'function') return answer()
    if (answer) {
      const params = answer.key === 'does_not_exist' ? { input: keyValue(e.detail) ?? '' } : undefined
      return new ValidationError(new FieldErrors().add(answer.field, answer.key, params).tree)
    }
    return unique ? new ApiError(409, 'conflict') : new NotFoundError()
  }
  if (isRetryable(error)) return new ApiError(409, 'conflict')
  return null
}

export interface TransactionalOptions {
  /** Runs again after a serialization failure or deadlock, at most this many times (default 3). */
  retries?: number
  isolationLevel?: IsolationLevel
}

/**
 * Runs `fn` in a transaction and commits it; a serialization failure or deadlock rolls it back and runs
 * it again (a bounded number of times, after a short random pause), so `fn` must read what it depends on
 * itself, inside the transaction, and take its row locks there. Inside a transaction already (a
 * savepoint) it runs once: the outer transaction is the one to retry. Every write path goes through it.
 */
export async function transactional<T>(
  em: EntityManager,
  fn: (em: EntityManager) => Promise<T>,
  options: TransactionalOptions = {}
): Promise<T> {
  const retries = em.isInTransaction() ? 0 : (options.retries ?? 3)
  for (let attempt = 0; ; attempt++) {
    try {
      return await em.transactional((tem) => fn(tem as EntityManager), { isolationLevel: options.isolationLevel })
    } catch (error) {
      if (attempt >= retries || !isRetryable(error)) throw error
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * 2 ** attempt))
    }
  }
}

/**
 * Locks the rows of `table` with these ids for the rest of the transaction (`for update`, or `for key share`
 * to keep them from being deleted while rows referring to them are written) and answers the ids found.
 */
export async function lockRows(
  em: EntityManager,
  table: string,
  ids: number[],
  mode: 'update' | 'share' | 'key share' = 'update'
): Promise<Set<number>> {
  if (!em.isInTransaction()) throw new Error('lockRows outside a transaction locks nothing')
  if (ids.length === 0) return new Set()
  const rows = await em
    .getConnection()
    .execute<{ id: number }[]>(
      `select id from ${table} where id = any(?::int[]) order by id for ${mode}`,
      [`{${ids.join(',')}}`],
      'all',
      em.getTransactionContext()
    )
  return new Set(rows.map((r) => r.id))
}

/**
 * Runs one SQL statement (`?` placeholders) in `em`'s transaction when it has one, and answers its rows. The one
 * way a repository runs raw SQL; keep it for what MikroORM cannot say or measurably says slower.
 */
export async function sql<T = Record<string, unknown>>(em: Reads, text: string, params: unknown[] = []): Promise<T[]> {
  return (await em.getConnection().execute(text, params, 'all', em.getTransactionContext())) as T[]
}

/**
 * Runs one statement (`$1`… placeholders) where `em` is: outside a transaction as the named statement `name`
 * on the ORM plugin's own connections (`preparedQuery`: parsed and planned once per connection, no knex),
 * inside one on the transaction's connection (`sql`). For a repository's hot statements that run both ways.
 */
export async function namedSql<T = Record<string, unknown>>(
  em: Reads,
  name: string,
  text: string,
  values: unknown[] = []
): Promise<T[]> {
  if (!em.getTransactionContext()) return preparedQuery<T>(em, name, text, values)
  const params: unknown[] = []
  const positional = text.replace(/\$([1-9][0-9]*)/g, (_, n: string) => {
    params.push(values[Number(n) - 1])
    return '?'
  })
  return sql<T>(em, positional, params)
}

const afterCommitQueues = new WeakMap<object, (() => unknown)[]>()
const subscribed = new WeakSet<object>()

/**
 * Calls `fn` once the transaction `em` is in has committed (at once outside a transaction); dropped when it rolls
 * back. MikroORM reports only the outermost commit, so inside a savepoint `fn` waits for the outermost one (and
 * runs with it even if the savepoint alone was rolled back). Errors thrown by `fn` are the caller's to catch
 * inside `fn`: the commit has happened and stays.
 */
export function afterCommit(em: EntityManager, fn: () => unknown): void {
  let ctx = em.getTransactionContext() as { parentTransaction?: object } | undefined
  // A savepoint is a knex transaction whose `parentTransaction` is the one around it.
  while (ctx?.parentTransaction) ctx = ctx.parentTransaction
  if (!ctx) {
    void Promise.resolve().then(fn)
    return
  }
  const events = em.getEventManager()
  if (!subscribed.has(events)) {
    subscribed.add(events)
    events.registerSubscriber({
      afterTransactionCommit: ({ transaction }) => {
        const queue = transaction && afterCommitQueues.get(transaction as object)
        if (!queue) return
        afterCommitQueues.delete(transaction as object)
        for (const callback of queue) void Promise.resolve().then(callback)
      },
      afterTransactionRollback: ({ transaction }) => {
        if (transaction) afterCommitQueues.delete(transaction as object)
      }
    })
  }
  const queue = afterCommitQueues.get(ctx)
  if (queue) queue.push(fn)
  else afterCommitQueues.set(ctx, [fn])
}
