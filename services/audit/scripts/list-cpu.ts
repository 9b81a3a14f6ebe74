/**
 * CPU per request of audit's two hot lists, in this process (`process.cpuUsage`: routing, hooks, token,
 * repository, rendering, serialization; no HTTP parsing) and in the PostgreSQL backends of its pool
 * (`/proc/<pid>/stat`), over `app.inject`. For A/B runs of the list code; not a test. Uses the test
 * PostgreSQL and NATS on fresh names, removed afterwards.
 *
 *   npx tsx services/audit/scripts/list-cpu.ts          (N=2000 requests each, LOGS=5000 log rows)
 */
import { readFileSync } from 'node:fs'
import type { EntityManager } from '@mikro-orm/postgresql'
import { bearer, buildSystem } from '../test/helper.js'

const N = Number(process.env.N ?? 2000)
const cleanups: (() => unknown)[] = []
const TICK_US = 10_000 // USER_HZ = 100

function backendTicks(pids: number[]): number {
  let ticks = 0
  for (const pid of pids) {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    ticks += Number(fields[11]) + Number(fields[12])
  }
  return ticks
}

async function main() {
  const sys = await buildSystem({ after: (fn) => cleanups.push(fn) })
  const { audit } = sys
  const em = () => audit.orm.em.fork() as EntityManager
  await em()
    .getConnection()
    .execute(
      `insert into user_log (event_id, user_id, username, ip, operation, operator_id, operate_time, user_agent)
       select gen_random_uuid(), g % 50 + 1, 'u', '10.0.0.1', g % 3, g % 50 + 1, now() - g * interval '1 minute',
              'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'
       from generate_series(1, ${Number(process.env.LOGS ?? 5000)}) g`
    )
  await em()
    .getConnection()
    .execute(
      `insert into black_list (patient_id, reason, creator_id) select g, 'bench', 1 from generate_series(1, 20) g`
    )
  const headers = bearer(sys.admin.access)
  const pool = (
    audit.orm.em.getConnection().getKnex().client as { pool: { free: { resource: { processID: number } }[] } }
  ).pool
  const lines: string[] = []
  for (const url of (process.env.URLS ?? '/api/black-list/,/api/user-logs/').split(',')) {
    const once = async () => {
      const res = await audit.inject({ method: 'GET', url, headers })
      if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`)
      return res
    }
    for (let i = 0; i < 300; i++) await once() // warm-up: JIT, pool, prepared statements
    const pids = pool.free.map((r) => r.resource.processID)
    const xacts = async () => {
      await new Promise((r) => setTimeout(r, 1500)) // backends report their statistics about once a second
      const [row] = await em()
        .getConnection()
        .execute<{ n: string }[]>(
          'select xact_commit + xact_rollback as n from pg_stat_database where datname = current_database()'
        )
      return Number(row.n)
    }
    const xactsBefore = process.env.XACTS ? await xacts() : 0
    const ticks = backendTicks(pids)
    const before = process.cpuUsage()
    for (let i = 0; i < N; i++) await once()
    const spent = process.cpuUsage(before)
    const pg = ((backendTicks(pids) - ticks) * TICK_US) / N
    const xactNote = process.env.XACTS ? `, ${((await xacts()) - xactsBefore - 1) / N} transactions per request` : ''
    const res = await once()
    lines.push(
      `${url}: audit ${((spent.user + spent.system) / N).toFixed(0)} µs, pg ${pg.toFixed(0)} µs per request ` +
        `(${(JSON.parse(res.body) as unknown[]).length} rows, x-total-count ${res.headers['x-total-count']}, ${pids.length} backends${xactNote})`
    )
  }
  console.log(lines.join('\n'))
}

try {
  await main()
} finally {
  for (const fn of cleanups.reverse()) await fn()
}
