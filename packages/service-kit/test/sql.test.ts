import t from 'tap'
import type { EntityManager } from '@mikro-orm/postgresql'
import { isolate } from '../src/testing/index.js'
import { createOrm } from '../src/plugins/orm.js'
import {
  afterCommit,
  ApiError,
  constraintError,
  isRetryable,
  lockRows,
  sql,
  transactional,
  type ConstraintTable
} from '../src/index.js'

/** The kit's transaction helper and database-error mapping against the real PostgreSQL (deadlocks included). */
t.test('transactional() and constraint errors', async (t) => {
  const iso = await isolate(t)
  const schema = iso.schema('kitsql')
  const orm = await createOrm({
    databaseUrl: iso.DATABASE_URL,
    schema,
    entities: [],
    migrations: [],
    poolMax: 6,
    migrate: false
  })
  t.after(() => orm.close())
  const run = (sql: string, params: unknown[] = []) => orm.em.fork().getConnection().execute(sql, params)
  await run(`create schema if not exists "${schema}"`)
  await run('create table parent (id integer primary key, name text not null)')
  await run('create unique index parent_name_uq on parent (lower(name))')
  await run(
    'create table child (id serial primary key, parent_id integer not null references parent (id) on delete cascade)'
  )
  await run(`insert into parent (id, name) values (1, 'one'), (2, 'two')`)
  const fork = () => orm.em.fork() as EntityManager
  const table: ConstraintTable = {
    parent_name_uq: { field: 'name', key: 'unique' },
    child_parent_id_fkey: { field: 'parent', key: 'does_not_exist' }
  }
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => t.fail('should have failed') as never,
      (error: unknown) => error
    )

  t.test('a unique violation is the field error the table names, else a 409', async (t) => {
    const error = await failure(
      transactional(fork(), (em) =>
        em.getConnection().execute(`insert into parent values (3, 'ONE')`, [], 'run', em.getTransactionContext())
      )
    )
    const mapped = constraintError(error, table)!
    t.equal(mapped.statusCode, 400)
    t.same(mapped.body('en'), { name: ['This field must be unique.'] })
    t.equal(constraintError(error, {})!.statusCode, 409, 'a constraint the service did not name')
    t.same(constraintError(error, {})!.body('en'), {
      detail: 'The request conflicted with a concurrent change; try again.'
    })
  })

  t.test('a foreign-key violation names the missing row, or is a 404', async (t) => {
    const error = await failure(
      transactional(fork(), (em) =>
        em.getConnection().execute('insert into child (parent_id) values (77)', [], 'run', em.getTransactionContext())
      )
    )
    t.same(constraintError(error, table)!.body('en'), { parent: ['Invalid pk "77" - object does not exist.'] })
    t.equal(constraintError(error, { child_parent_id_fkey: 'not_found' })!.statusCode, 404)
    t.equal(constraintError(error, {})!.statusCode, 404, 'a row deleted meanwhile')
    t.equal(constraintError(error, { child_parent_id_fkey: () => new ApiError(401, 'login_failed') })!.statusCode, 401)
    t.equal(constraintError(new Error('other'), table), null, 'anything else is not a race')
  })

  // Two transactions that lock rows 1 and 2 in opposite orders deadlock; PostgreSQL aborts one of them.
  async function deadlock(retries: number) {
    const attempts = [0, 0]
    let arrived = 0
    let release!: () => void
    const bothHoldTheirFirstRow = new Promise<void>((resolve) => (release = resolve))
    const side = (index: number, first: number, second: number) =>
      transactional(
        fork(),
        async (em) => {
          attempts[index]++
          await lockRows(em, 'parent', [first])
          if (attempts[index] === 1) {
            if (++arrived === 2) release()
            await bothHoldTheirFirstRow
          }
          await lockRows(em, 'parent', [second])
          await em
            .getConnection()
            .execute('update parent set name = name where id in (1, 2)', [], 'run', em.getTransactionContext())
          return index
        },
        { retries }
      )
    const outcomes = await Promise.allSettled([side(0, 1, 2), side(1, 2, 1)])
    return { outcomes, attempts }
  }

  t.test('a deadlock is run again, and both transactions commit', async (t) => {
    const { outcomes, attempts } = await deadlock(3)
    t.same(
      outcomes.map((o) => o.status),
      ['fulfilled', 'fulfilled']
    )
    t.equal(attempts[0] + attempts[1], 3, 'the victim ran twice')
  })

  t.test('without retries the deadlock victim fails, and answers 409', async (t) => {
    const { outcomes, attempts } = await deadlock(0)
    const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected')
    t.equal(rejected.length, 1, 'one victim')
    t.ok(isRetryable(rejected[0].reason), 'a deadlock (40P01)')
    t.equal(constraintError(rejected[0].reason)!.statusCode, 409)
    t.same(attempts, [1, 1])
  })

  t.test('inside a transaction already, nothing is retried (the outer one would be)', async (t) => {
    let calls = 0
    const em = fork()
    const error = await failure(
      em.transactional(async (outer) =>
        transactional(outer as EntityManager, async () => {
          calls++
          throw Object.assign(new Error('serialization failure'), { code: '40001' })
        })
      )
    )
    t.equal(calls, 1)
    t.ok(isRetryable(error))
  })

  t.test('sql() runs in the transaction of its entity manager', async (t) => {
    await transactional(fork(), async (em) => {
      await sql(em, `insert into parent (id, name) values (?, ?)`, [10, 'ten'])
      t.same(await sql(em, 'select name from parent where id = ?', [10]), [{ name: 'ten' }], 'seen inside')
      t.same(await sql(fork(), 'select name from parent where id = ?', [10]), [], 'not yet outside')
    })
    t.same(await sql(fork(), 'select name from parent where id = ?', [10]), [{ name: 'ten' }], 'committed')
  })

  t.test('afterCommit() runs after the outermost commit, never after a rollback', async (t) => {
    const calls: string[] = []
    let outerDone!: (rows: unknown) => void
    const seenByCallback = new Promise((resolve) => (outerDone = resolve))
    let savepointDone!: () => void
    const savepointRan = new Promise<void>((resolve) => (savepointDone = resolve))
    await transactional(fork(), async (em) => {
      await sql(em, `insert into parent (id, name) values (?, ?)`, [11, 'eleven'])
      afterCommit(em, async () => {
        calls.push('outer')
        outerDone(await sql(fork(), 'select name from parent where id = ?', [11]))
      })
      await transactional(em, async (inner) =>
        afterCommit(inner, () => {
          calls.push('savepoint')
          savepointDone()
        })
      )
      t.same(calls, [], 'nothing before the commit')
    })
    t.same(await seenByCallback, [{ name: 'eleven' }], 'the callback sees the committed row')
    await savepointRan
    t.same(calls.sort(), ['outer', 'savepoint'], "a savepoint's callback runs with the outermost commit")

    // A rollback drops the callback: a later callback on a committed transaction of the same manager runs alone.
    const order: string[] = []
    await failure(
      transactional(fork(), async (em) => {
        afterCommit(em, () => order.push('rolled back'))
        throw new Error('roll back')
      })
    )
    let laterDone!: () => void
    const later = new Promise<void>((resolve) => (laterDone = resolve))
    await transactional(fork(), async (em) => {
      afterCommit(em, () => {
        order.push('committed')
        laterDone()
      })
    })
    await later
    t.same(order, ['committed'], 'dropped with the rollback')
    const outside = await new Promise((resolve) => afterCommit(fork(), () => resolve('at once')))
    t.equal(outside, 'at once', 'outside a transaction it runs at once')
  })

  t.test('lockRows refuses to run outside a transaction', async (t) => {
    await t.rejects(lockRows(fork(), 'parent', [1]), /outside a transaction/)
  })
})
