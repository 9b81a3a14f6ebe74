/**
 * Latency of each log query straight through the repository (no HTTP, one connection at a time), against a
 * schema kept by `BENCH_KEEP=1 pnpm bench logs`: what the data access costs at that size, apart from the
 * machine's HTTP load. `SCHEMA=audit_t… npx tsx services/audit/scripts/list-latency.ts`
 */
import { MikroORM, type EntityManager } from '@mikro-orm/postgresql'
import { kitEntities } from '@roster/service-kit'
import { TEST_DATABASE_URL } from '@roster/service-kit/testing'
import { entities } from '../src/entities/index.js'
import { listUserLogs, type LogFilter } from '../src/repositories/user-logs.js'

const schema = process.env.SCHEMA!
const orm = await MikroORM.init({
  clientUrl: TEST_DATABASE_URL,
  schema,
  entities: [...kitEntities, ...entities],
  driverOptions: { connection: { options: `-c search_path="${schema}",public` } },
  pool: { min: 0, max: 2 },
  forceUtcTimezone: true,
  allowGlobalContext: false,
  debug: false
})
const em = () => orm.em.fork() as EntityManager
const day = (n: number) => new Date(Date.now() - n * 86_400_000)
const [{ user_id: someUser }] = await em()
  .getConnection()
  .execute<{ user_id: number }[]>('select user_id from user_log limit 1')
const first = await listUserLogs(em(), {}, { limit: 100, offset: 0 }, 'top')
let next = first.next
for (let i = 1; i < 100 && next; i++) next = (await listUserLogs(em(), {}, { limit: 100, offset: 0 }, next)).next
const cases: [string, LogFilter, { limit: number; offset: number }, Parameters<typeof listUserLogs>[3]?][] = [
  ['default page', {}, { limit: 100, offset: 0 }],
  ['offset 10 000', {}, { limit: 100, offset: 10_000 }],
  ['cursor at row 10 000', {}, { limit: 100, offset: 0 }, next],
  ['?user', { user: someUser }, { limit: 100, offset: 0 }],
  ['?operation=1', { operation: 1 }, { limit: 100, offset: 0 }],
  ['?operation=2', { operation: 2 }, { limit: 100, offset: 0 }],
  ['?since 7 days', { since: day(7) }, { limit: 100, offset: 0 }],
  ['?until 30 days ago', { until: day(30) }, { limit: 100, offset: 0 }],
  ['?since 90 & until 30 days ago', { since: day(90), until: day(30) }, { limit: 100, offset: 0 }]
]
for (const [name, filter, page, cursor] of cases) {
  const times: number[] = []
  for (let i = 0; i < 40; i++) {
    const started = performance.now()
    await listUserLogs(em(), filter, page, cursor)
    times.push(performance.now() - started)
  }
  times.sort((a, b) => a - b)
  console.log(`${name}: p50 ${times[20].toFixed(1)} ms, p95 ${times[38].toFixed(1)} ms`)
}
await orm.close()
