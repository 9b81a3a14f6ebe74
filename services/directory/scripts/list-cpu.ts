/**
 * CPU per request of directory's two lists, in this process (`process.cpuUsage`: routing, hooks, token,
 * repository, rendering, serialization; no HTTP parsing) and in the PostgreSQL backends of its pool
 * (`/proc/<pid>/stat`), over `app.inject`, with 20 groups with profiles and the catalogue's 40 occupations.
 * For A/B runs of the list code; not a test. Uses the test PostgreSQL and NATS on fresh names, removed afterwards.
 *
 *   npx tsx services/directory/scripts/list-cpu.ts          (N=2000 requests each)
 */
import { readFileSync } from 'node:fs'
import { build } from '../test/helper.js'

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
  const sys = await build({ after: (fn) => cleanups.push(fn) }, { DIRECTORY_SEED_OCCUPATIONS: true })
  const { app, admin } = sys
  for (let i = 0; i < 20; i++) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/groups/',
      headers: admin.headers,
      payload: { name: `group-${i}`, profile: { location: `building ${i}`, contact_phone: '010-1234567' } }
    })
    if (res.statusCode !== 200) throw new Error(res.body)
  }
  // identity (in this process) consumes the groups' events: let it finish before measuring
  await new Promise((r) => setTimeout(r, 3000))
  const pool = (
    app.orm.em.getConnection().getKnex().client as { pool: { free: { resource: { processID: number } }[] } }
  ).pool
  const lines: string[] = []
  for (const url of (process.env.URLS ?? '/api/groups/,/api/occupations/').split(',')) {
    const once = async () => {
      const res = await app.inject({ method: 'GET', url, headers: admin.headers })
      if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`)
      return res
    }
    for (let i = 0; i < 300; i++) await once() // warm-up: JIT, pool, prepared statements
    const pids = pool.free.map((r) => r.resource.processID)
    const ticks = backendTicks(pids)
    const before = process.cpuUsage()
    for (let i = 0; i < N; i++) await once()
    const spent = process.cpuUsage(before)
    const pg = ((backendTicks(pids) - ticks) * TICK_US) / N
    const res = await once()
    lines.push(
      `${url}: directory ${((spent.user + spent.system) / N).toFixed(0)} µs, pg ${pg.toFixed(0)} µs per request ` +
        `(${(JSON.parse(res.body) as unknown[]).length} rows, x-total-count ${res.headers['x-total-count']}, ${pids.length} backends)`
    )
  }
  console.log(lines.join('\n'))
}

try {
  await main()
} finally {
  for (const fn of cleanups.reverse()) await fn()
}
