import t from 'tap'
import { randomUUID } from 'node:crypto'
import type { EntityManager } from '@mikro-orm/postgresql'
import { isolate } from '@roster/service-kit/testing'
import type { ServiceApp } from '@roster/service-kit'
import { buildApp } from '../src/app.js'
import { maintainLogPartitions } from '../src/repositories/log-partitions.js'
import { listUserLogs, recordUserLog } from '../src/repositories/user-logs.js'
import { sql, testConfig } from './helper.js'

const MONTH = /^user_log_p(\d{4})(\d{2})$/

/** `YYYYMM` of the UTC month `months` from now's. */
function monthOf(months: number, from = new Date()): string {
  const d = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth() + months, 1))
  return `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`
}

/** A time in the middle of that month. */
function timeIn(months: number): Date {
  const now = new Date()
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + months, 15, 12))
}

async function partitions(app: ServiceApp): Promise<string[]> {
  const rows = await sql<{ name: string }>(
    app,
    `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'user_log'::regclass order by 1`
  )
  return rows.map((r) => r.name)
}

async function partitionOf(app: ServiceApp, eventId: string): Promise<string> {
  const [row] = await sql<{ name: string }>(
    app,
    'select tableoid::regclass::text as name from user_log where event_id = ?',
    [eventId]
  )
  return row.name
}

/** Writes a login row as the consumer does, in a transaction of its own. */
async function record(app: ServiceApp, at: Date, operation = 0): Promise<string> {
  const eventId = randomUUID()
  await app.orm.em.fork().transactional((em) =>
    recordUserLog(em as EntityManager, {
      eventId,
      user: 7,
      username: 'someone',
      ip: '203.0.113.9',
      operation,
      operator: 7,
      operateTime: at.toISOString(),
      userAgent: 'test'
    })
  )
  return eventId
}

const em = (app: ServiceApp) => app.orm.em.fork() as EntityManager

t.test('the user log is partitioned by month', async (t) => {
  const iso = await isolate(t)
  const app = await buildApp(testConfig(iso))
  t.after(() => app.close())
  await app.ready()
  await maintainLogPartitions(em(app), { ahead: 3 })

  t.test('this month and the next ones exist ahead of time; rows land in their month', async (t) => {
    const made = await partitions(app)
    for (let m = 0; m <= 3; m++) t.ok(made.includes(`user_log_p${monthOf(m)}`), `month +${m}`)
    t.ok(made.includes('user_log_default'))
    t.equal(await partitionOf(app, await record(app, timeIn(0))), `user_log_p${monthOf(0)}`)
    t.equal(await partitionOf(app, await record(app, timeIn(2))), `user_log_p${monthOf(2)}`)
    // A month's first instant belongs to it, its last to the month before (UTC bounds).
    const now = new Date()
    const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1))
    t.equal(await partitionOf(app, await record(app, first)), `user_log_p${monthOf(1)}`)
    t.equal(await partitionOf(app, await record(app, new Date(first.getTime() - 1))), `user_log_p${monthOf(0)}`)
  })

  t.test('a row for a month without a partition is written, then moved into its own month', async (t) => {
    const old = timeIn(-40)
    const eventId = await record(app, old)
    t.equal(await partitionOf(app, eventId), 'user_log_default')
    const before = await sql(app, 'select count(*)::int as n from user_log')
    await maintainLogPartitions(em(app), { ahead: 3 })
    t.equal(await partitionOf(app, eventId), `user_log_p${monthOf(-40)}`)
    t.same(await sql(app, 'select count(*)::int as n from user_log'), before, 'no row lost or doubled')
    t.same(await sql(app, 'select count(*)::int as n from user_log_default'), [{ n: 0 }])
    // The same event again (a replayed stream) is still one row.
    const replay = await app.orm.em.fork().transactional((tem) =>
      recordUserLog(tem as EntityManager, {
        eventId,
        user: 7,
        username: 'someone',
        ip: '',
        operation: 0,
        operator: 7,
        operateTime: old.toISOString(),
        userAgent: ''
      })
    )
    t.equal(replay, undefined)
    t.same(await sql(app, 'select count(*)::int as n from user_log where event_id = ?', [eventId]), [{ n: 1 }])
  })

  t.test('retention drops whole months that ended before it, and their totals, nothing else', async (t) => {
    const kept = await record(app, timeIn(-1))
    const gone = [await record(app, timeIn(-14)), await record(app, timeIn(-13), 2)]
    const recent = await record(app, new Date(Date.now() - 3 * 86_400_000))
    await maintainLogPartitions(em(app), { ahead: 3 })
    const totals = async () => {
      // What `X-Total-Count` of the default list says (a full first page of 1 makes it count).
      const { total } = await listUserLogs(em(app), {}, { limit: 1, offset: 0 })
      const [counted] = await sql(app, 'select count(*) filter (where operation < 2)::int as n from user_log')
      return { shown: total, counted: counted.n }
    }
    const dropped = await maintainLogPartitions(em(app), { ahead: 3, retentionDays: 365 })
    // 365 days ago falls in month -12 (or -11 early in a month): months -14 and -13 ended before it.
    t.ok(dropped.includes(`user_log_p${monthOf(-14)}`) && dropped.includes(`user_log_p${monthOf(-13)}`), dropped.join())
    for (const name of dropped) {
      const [, y, m] = MONTH.exec(name)!
      const end = Date.UTC(Number(y), Number(m), 1)
      t.ok(end <= Date.now() - 365 * 86_400_000, `${name} ended before the retention`)
    }
    const left = await partitions(app)
    for (const name of dropped) t.notOk(left.includes(name))
    t.notOk(left.includes(`user_log_p${monthOf(-40)}`), 'older months are dropped too')
    for (const id of gone) t.same(await sql(app, 'select 1 from user_log where event_id = ?', [id]), [])
    t.equal(await partitionOf(app, kept), `user_log_p${monthOf(-1)}`)
    t.ok(await partitionOf(app, recent))
    const now = await totals()
    t.equal(now.shown, now.counted, 'X-Total-Count still matches the rows')
    t.same(await maintainLogPartitions(em(app), { ahead: 3, retentionDays: 365 }), [], 'a second run drops nothing')
  })

  t.test('many makers at once: all succeed, each month made once', async (t) => {
    const runs = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        maintainLogPartitions(em(app), { ahead: 6 + (i % 3), retentionDays: i % 2 ? 365 : undefined })
      )
    )
    t.same(
      runs.filter((r) => r.status === 'rejected'),
      []
    )
    const made = await partitions(app)
    t.equal(new Set(made).size, made.length)
    for (let m = 0; m <= 8; m++) t.ok(made.includes(`user_log_p${monthOf(m)}`), `month +${m}`)
  })
})

t.test('replicas starting together on a fresh schema both start', async (t) => {
  const iso = await isolate(t)
  const apps = await Promise.all([buildApp(testConfig(iso)), buildApp(testConfig(iso)), buildApp(testConfig(iso))])
  for (const app of apps) t.after(() => app.close())
  const started = await Promise.allSettled(apps.map((app) => app.ready()))
  t.same(
    started.filter((r) => r.status === 'rejected'),
    []
  )
  // Each start-up makes the months ahead; wait for theirs, then see them made once.
  await Promise.all(apps.map((app) => maintainLogPartitions(em(app), { ahead: 3 })))
  const made = await partitions(apps[0])
  t.equal(new Set(made).size, made.length)
  t.ok(made.includes(`user_log_p${monthOf(3)}`))
})
