/**
 * How fast audit ingests a backlog: N login events are published while audit is stopped, then audit
 * starts and the time until every row exists is measured. Not a test; uses the test PostgreSQL and
 * NATS on fresh names, removed afterwards.
 *
 *   npx tsx services/audit/scripts/ingest-rate.ts            (N=2000)
 *   N=10000 npx tsx services/audit/scripts/ingest-rate.ts
 */
import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { EventEnvelope } from '@roster/contracts'
import { connectNats } from '@roster/service-kit'
import { isolate } from '@roster/service-kit/testing'
import { buildApp } from '../src/app.js'
import { readConfig } from '../src/config.js'

const N = Number(process.env.N ?? 2000)
const cleanups: (() => unknown)[] = []
const quiet = { warn: () => undefined } as any

async function main() {
  const iso = await isolate({ after: (fn) => cleanups.push(fn) })
  const config = readConfig({
    DATABASE_URL: iso.DATABASE_URL,
    NATS_URL: iso.NATS_URL,
    NATS_PREFIX: iso.NATS_PREFIX,
    DB_SCHEMA: iso.schema('audit'),
    LOG_LEVEL: 'warn',
    IDENTITY_URL: 'http://127.0.0.1:9',
    IDENTITY_INTERNAL_URL: 'http://127.0.0.1:9'
  })

  // The backlog, published the way identity's outbox relay does (msgID = event id).
  const nats = await connectNats({ url: config.NATS_URL, prefix: config.NATS_PREFIX, name: 'ingest-rate' }, quiet)
  cleanups.push(() => nats.nc.close())
  await nats.ensureStream('IDENTITY')
  const subject = nats.names.subject('identity.session.login')
  const publishStart = performance.now()
  for (let i = 0; i < N; i += 500) {
    const batch = Array.from({ length: Math.min(500, N - i) }, (_, j) => {
      const n = i + j
      const event: EventEnvelope<'identity.session.login'> = {
        id: randomUUID(),
        subject: 'identity.session.login',
        occurred_at: new Date(Date.now() - (N - n) * 10).toISOString(),
        data: {
          session_id: randomUUID(),
          user_id: 1 + (n % 500),
          username: `user${n % 500}`,
          ip: '10.0.0.1',
          user_agent: 'ingest-rate'
        }
      }
      return nats.js.publish(subject, JSON.stringify(event), { msgID: event.id })
    })
    await Promise.all(batch)
  }
  const published = performance.now() - publishStart

  const buildStart = performance.now()
  const app = await buildApp(config)
  cleanups.push(() => app.close())
  const built = performance.now() - buildStart
  const count = async () => {
    const [row] = await app.orm.em.fork().getConnection().execute<{ n: string }[]>('select count(*) as n from user_log')
    return Number(row.n)
  }
  const start = performance.now()
  await app.ready() // starts the consumer
  let rows = 0
  while ((rows = await count()) < N) {
    if (performance.now() - start > 300_000) throw new Error(`only ${rows} of ${N} rows after 5 minutes`)
    await new Promise((r) => setTimeout(r, 10))
  }
  const seconds = (performance.now() - start) / 1000
  const stats = app.consumers.stats()['audit-identity']

  console.log(`published ${N} login events in ${(published / 1000).toFixed(2)} s (audit stopped)`)
  console.log(`audit built (migrations included) in ${(built / 1000).toFixed(2)} s`)
  console.log(`all ${N} rows written ${seconds.toFixed(2)} s after start: ${Math.round(N / seconds)} events/s`)
  console.log(`consumer: handled ${stats.handled}, skipped ${stats.skipped}, parked ${stats.parked}`)
}

try {
  await main()
} catch (error) {
  console.error(error)
  process.exitCode = 1
} finally {
  for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => undefined)
}
