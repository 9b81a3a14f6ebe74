import t from 'tap'
import type { EntityManager } from '@mikro-orm/postgresql'
import { isolate } from '@roster/service-kit/testing'
import { migrateService, type ServiceApp } from '@roster/service-kit'
import { buildApp } from '../src/app.js'
import { entities } from '../src/entities/index.js'
import { migrations } from '../src/migrations/index.js'
import { maintainLogPartitions } from '../src/repositories/log-partitions.js'
import { listUserLogs, type LogFilter } from '../src/repositories/user-logs.js'
import { sql, testConfig } from './helper.js'

const HOUR = 3_600_000
const DAY = 24 * HOUR

const em = (app: ServiceApp) => app.orm.em.fork() as EntityManager

/** `X-Total-Count` of a filtered list (a full first page of 1 makes it count) against the rows themselves. */
async function compare(app: ServiceApp, filter: LogFilter): Promise<{ shown: number; counted: number }> {
  const { total } = await listUserLogs(em(app), filter, { limit: 1, offset: 0 })
  const conditions = [filter.operation === undefined ? 'operation < 2' : 'operation = ?']
  const values: unknown[] = filter.operation === undefined ? [] : [filter.operation]
  for (const [bound, condition] of [
    [filter.since, 'operate_time >= to_timestamp(?::float8 / 1000)'],
    [filter.until, 'operate_time <= to_timestamp(?::float8 / 1000)']
  ] as const) {
    if (bound === undefined) continue
    conditions.push(condition)
    values.push(bound.getTime())
  }
  const [{ n }] = await sql<{ n: number }>(
    app,
    `select count(*)::int as n from user_log where ${conditions.join(' and ')}`,
    values
  )
  return { shown: total, counted: n }
}

/** The per-hour and per-day totals, each against a count of the rows they stand for (keys where they differ). */
async function totalsAgainstRows(app: ServiceApp): Promise<unknown[]> {
  return sql(
    app,
    `select 'hour' as unit, coalesce(t.operation, r.operation) as operation, coalesce(t.hour, r.hour) as at,
            t.total, r.n
       from user_log_hour_total t
       full join (select operation, date_trunc('hour', operate_time, 'UTC') as hour, count(*) as n
                    from user_log group by 1, 2) r on r.operation = t.operation and r.hour = t.hour
      where coalesce(t.total, 0) <> coalesce(r.n, 0)
     union all
     select 'day', coalesce(t.operation, r.operation), coalesce(t.day, r.day)::timestamptz, t.total, r.n
       from user_log_total t
       full join (select operation, (operate_time at time zone 'UTC')::date as day, count(*) as n
                    from user_log group by 1, 2) r on r.operation = t.operation and r.day = t.day
      where coalesce(t.total, 0) <> coalesce(r.n, 0)`
  )
}

t.test(
  'X-Total-Count of a time window: whole days, the hours of its edge days, the rows of its edge hours',
  async (t) => {
    const iso = await isolate(t)
    const app = await buildApp(testConfig(iso))
    t.after(() => app.close())
    await app.ready()
    await maintainLogPartitions(em(app), { ahead: 1 })

    // 20 days of rows up to now: one every 7 minutes 13 seconds (never on a round time), and some on round
    // ones (the first instant of a day, of an hour, the last millisecond before one), every operation.
    const now = Date.now()
    const first = Math.floor(now / DAY) * DAY - 19 * DAY
    await sql(
      app,
      `insert into user_log (event_id, user_id, operation, operate_time)
     select gen_random_uuid(), 7, g % 3, to_timestamp(? / 1000.0) + g * interval '433 seconds'
       from generate_series(0, (19 * 86400 + (? - ?) / 1000) / 433) g`,
      [first, now, first]
    )
    await sql(
      app,
      `insert into user_log (event_id, user_id, operation, operate_time)
     select gen_random_uuid(), 8, g % 3, to_timestamp(? / 1000.0) + (g / 3) * interval '1 day' + d.shift
       from generate_series(0, 56) g,
            (values (interval '0'), (interval '5 hours'), (interval '5 hours' - interval '1 millisecond'),
                    (interval '1 day' - interval '1 millisecond')) d(shift)`,
      [first]
    )
    t.same(await totalsAgainstRows(app), [], 'the triggers keep every hour and day')

    const at = (ms: number) => new Date(first + ms)
    const windows: [string, LogFilter][] = [
      ['since the middle of an hour', { since: at(3 * DAY + 7 * HOUR + 1234) }],
      ['since an hour', { since: at(3 * DAY + 7 * HOUR) }],
      ['since a day', { since: at(3 * DAY) }],
      ['since a day, less 1 ms', { since: at(3 * DAY - 1) }],
      ['until the middle of an hour', { until: at(12 * DAY + 15 * HOUR + 59 * 60_000) }],
      ['until an hour (inclusive)', { until: at(12 * DAY + 5 * HOUR) }],
      ['until a day (inclusive)', { until: at(12 * DAY) }],
      ['until a day, less 1 ms', { until: at(12 * DAY - 1) }],
      ['over many days', { since: at(2 * DAY + 3 * HOUR + 17_000), until: at(15 * DAY + 22 * HOUR + 5) }],
      ['from a day to a day', { since: at(2 * DAY), until: at(9 * DAY) }],
      ['from an hour to an hour', { since: at(2 * DAY + 5 * HOUR), until: at(9 * DAY + 5 * HOUR) }],
      ['within one day', { since: at(4 * DAY + HOUR + 1), until: at(4 * DAY + 20 * HOUR - 1) }],
      ['across one midnight', { since: at(4 * DAY + 20 * HOUR + 30_000), until: at(5 * DAY + 3 * HOUR + 1) }],
      ['two hours exactly', { since: at(6 * DAY + 5 * HOUR), until: at(6 * DAY + 7 * HOUR) }],
      ['just under two hours', { since: at(6 * DAY + 5 * HOUR + 1), until: at(6 * DAY + 7 * HOUR) }],
      ['one instant', { since: at(6 * DAY + 5 * HOUR), until: at(6 * DAY + 5 * HOUR) }],
      ['inverted', { since: at(9 * DAY), until: at(2 * DAY) }],
      ['before every row', { until: at(-DAY) }],
      ['after every row', { since: new Date(now + DAY) }],
      ['far future, either end', { since: at(DAY), until: new Date(Date.UTC(9999, 11, 31, 23, 59, 59)) }],
      [
        'past the year 9999 in UTC (the largest RFC 3339 time, at -23:59)',
        { since: at(DAY), until: new Date('9999-12-31T23:59:59.999-23:59') }
      ],
      ['from past the year 9999', { since: new Date('9999-12-31T23:59:59.999-23:59') }],
      ['far past, either end', { since: new Date(Date.UTC(1, 0, 1)), until: at(8 * DAY + 11 * HOUR + 11) }]
    ]
    // Random windows, the same every run.
    let seed = 42
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 20 * DAY
    for (let i = 0; i < 30; i++) {
      const [a, b] = [random(), random()].sort((x, y) => x - y)
      windows.push([`random window ${i}`, { since: at(a), until: at(b) }])
    }
    for (const [name, window] of windows) {
      for (const operation of [undefined, 0, 2]) {
        const { shown, counted } = await compare(app, { ...window, operation })
        t.equal(shown, counted, `${name}, operation ${operation ?? 'shown'}`)
      }
    }

    t.test('a purge and a whole month dropped by retention leave the totals right', async (t) => {
      await sql(app, `delete from user_log where user_id = 7 and operate_time < ?`, [
        at(6 * DAY + 5 * HOUR + 30 * 60_000)
      ])
      t.same(await totalsAgainstRows(app), [])
      const { shown, counted } = await compare(app, { since: at(5 * DAY + 3 * HOUR + 1), until: at(9 * DAY + 1) })
      t.equal(shown, counted)
      // A month four months back, written before its partition exists (the default partition's rows are moved).
      await sql(
        app,
        `insert into user_log (event_id, user_id, operation, operate_time)
       select gen_random_uuid(), 9, g % 3, date_trunc('month', now(), 'UTC') - interval '4 months' + g * interval '5 hours'
         from generate_series(0, 100) g`
      )
      await maintainLogPartitions(em(app), { ahead: 1 })
      t.same(await totalsAgainstRows(app), [], 'the rows moved into their month are counted once')
      const dropped = await maintainLogPartitions(em(app), { ahead: 1, retentionDays: 60 })
      t.ok(dropped.length > 0, dropped.join())
      t.same(await sql(app, 'select 1 from user_log where user_id = 9'), [], 'the month is gone')
      t.same(await totalsAgainstRows(app), [], 'and nothing is left of it in either table of totals')
      await sql(app, 'truncate user_log')
      t.same(
        await sql(
          app,
          'select (select count(*) from user_log_total)::int as days, (select count(*) from user_log_hour_total)::int as hours'
        ),
        [{ days: 0, hours: 0 }],
        'a truncate empties both'
      )
    })
  }
)

t.test('the migration that adds the hour totals sums the rows already there', async (t) => {
  const iso = await isolate(t)
  const config = testConfig(iso)
  const definition = { name: 'audit', config, entities }
  // The schema as the release before left it, with a log in it.
  await migrateService({ ...definition, migrations: migrations.slice(0, -1) })
  const app = await buildApp({ ...config, MIGRATE_ON_START: false })
  t.after(() => app.close())
  await app.ready()
  t.same(await sql(app, "select to_regclass('user_log_hour_total') as t"), [{ t: null }], 'no hour totals yet')
  await sql(
    app,
    `insert into user_log (event_id, user_id, operation, operate_time)
     select gen_random_uuid(), 7, g % 3, now() - g * interval '17 minutes' from generate_series(0, 500) g`
  )
  const { applied } = await migrateService({ ...definition, migrations })
  t.same(applied, [migrations[migrations.length - 1].name])
  t.same(await totalsAgainstRows(app), [], 'every hour of the rows already there')
  await sql(
    app,
    `insert into user_log (event_id, user_id, operation, operate_time) values (gen_random_uuid(), 7, 0, now())`
  )
  t.same(await totalsAgainstRows(app), [], 'and the triggers go on from there')
  const { shown, counted } = await compare(app, { since: new Date(Date.now() - 3 * HOUR - 1234), until: new Date() })
  t.equal(shown, counted)
})
