/**
 * Node CPU per call of audit's hot reads, each way it could be written: the repositories' named statement
 * against MikroORM (`em.find` with hydration, and the query builder with no hydration). CPU of this process
 * only (`process.cpuUsage`), so PostgreSQL's share and the machine's load stay out of the ratio. Not a
 * test; uses the test PostgreSQL and NATS on fresh names, removed afterwards.
 *
 *   npx tsx services/audit/scripts/read-cpu.ts          (N=1000 calls each)
 */
import type { EntityManager } from '@mikro-orm/postgresql'
import { isolate } from '@roster/service-kit/testing'
import { buildApp } from '../src/app.js'
import { readConfig } from '../src/config.js'
import { raw } from '@mikro-orm/core'
import { BlackListEntity, UserLogEntity, UserLogTotalEntity } from '../src/entities/index.js'
import { listUserLogs } from '../src/repositories/user-logs.js'
import { listBlackList } from '../src/repositories/black-list.js'

const N = Number(process.env.N ?? 1000)
const cleanups: (() => unknown)[] = []

async function cpuPerCall(name: string, fn: () => Promise<unknown>): Promise<string> {
  for (let i = 0; i < 200; i++) await fn() // warm-up: JIT, pool, prepared statements
  const before = process.cpuUsage()
  for (let i = 0; i < N; i++) await fn()
  const spent = process.cpuUsage(before)
  return `${name}: ${((spent.user + spent.system) / N).toFixed(0)} µs CPU per call`
}

async function main() {
  const iso = await isolate({ after: (fn) => cleanups.push(fn) })
  const app = await buildApp(
    readConfig({
      DATABASE_URL: iso.DATABASE_URL,
      NATS_URL: iso.NATS_URL,
      NATS_PREFIX: iso.NATS_PREFIX,
      DB_SCHEMA: iso.schema('audit'),
      LOG_LEVEL: 'warn',
      IDENTITY_URL: 'http://127.0.0.1:9',
      IDENTITY_INTERNAL_URL: 'http://127.0.0.1:9'
    })
  )
  cleanups.push(() => app.close())
  await app.ready()
  const em = () => app.orm.em.fork() as EntityManager
  await em()
    .getConnection()
    .execute(
      `insert into user_log (event_id, user_id, username, ip, operation, operator_id, operate_time, user_agent)
       select gen_random_uuid(), g % 50, 'u', '10.0.0.1', g % 3, g % 50, now() - g * interval '1 minute', 'Mozilla/5.0'
       from generate_series(1, 5000) g`
    )
  await em()
    .getConnection()
    .execute(
      `insert into black_list (patient_id, reason, creator_id) select g, 'reason', 1 from generate_series(1, 50) g`
    )
  const page = { limit: 100, offset: 0 }
  const lines = [
    await cpuPerCall('user logs page and total, named statements (repository)', () => listUserLogs(em(), {}, page)),
    await cpuPerCall('user logs page only, em.find + hydration', () =>
      em().find(UserLogEntity, { operation: { $lt: 2 } }, { orderBy: { operateTime: 'desc', id: 'desc' }, limit: 100 })
    ),
    await cpuPerCall('user logs page and total, query builder, no hydration', async () => {
      const e = em()
      await e
        .createQueryBuilder(UserLogEntity)
        .select('*')
        .where({ operation: { $lt: 2 } })
        .orderBy({ operateTime: 'desc', id: 'desc' })
        .limit(100)
        .execute('all', false)
      await e
        .createQueryBuilder(UserLogTotalEntity)
        .select(raw('coalesce(sum(total), 0) as n'))
        .where({ operation: { $lt: 2 } })
        .execute('get', false)
    }),
    await cpuPerCall('blacklist page of 20, named statement (repository)', () =>
      listBlackList(em(), {}, { limit: 20, offset: 0 })
    ),
    await cpuPerCall('blacklist page of 20, em.findAndCount + hydration', () =>
      em().findAndCount(BlackListEntity, { isDelete: 0 }, { orderBy: { joinTime: 'desc', id: 'desc' }, limit: 20 })
    )
  ]
  console.log(lines.join('\n'))
}

try {
  await main()
} finally {
  for (const fn of cleanups.reverse()) await fn()
}
