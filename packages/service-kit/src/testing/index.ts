import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { ensureDatabase } from '../plugins/orm.js'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'

/** The real PostgreSQL and NATS that tests use (the machine's, or CI's); nothing is mocked at that boundary. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/roster_test'
export const TEST_NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222'

interface Teardown {
  after(fn: () => unknown): void
}

let databaseReady: Promise<void> | null = null

/** Creates the test database once per process when it does not exist. */
export function ensureTestDatabase(url = TEST_DATABASE_URL): Promise<void> {
  databaseReady ??= ensureDatabase(url)
  return databaseReady
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`
}

export async function dropSchemas(url: string, schemas: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    for (const schema of schemas) await client.query(`drop schema if exists "${schema}" cascade`)
  } finally {
    await client.end()
  }
}

/** Deletes every stream (KV buckets are streams too) whose name starts with the prefix. */
export async function dropNatsPrefix(url: string, prefix: string): Promise<void> {
  const nc = await connect({ servers: url })
  try {
    const jsm = await jetstreamManager(nc)
    const names: string[] = []
    for await (const name of jsm.streams.names()) names.push(name)
    for (const name of names) {
      if (name.startsWith(`${prefix}_`) || name.startsWith(`KV_${prefix}_`))
        await jsm.streams.delete(name).catch(() => undefined)
    }
  } finally {
    await nc.close()
  }
}

export interface TestIsolation {
  DATABASE_URL: string
  NATS_URL: string
  NATS_PREFIX: string
  /** A fresh schema for the named service. */
  schema(service: string): string
}

/**
 * A fresh PostgreSQL schema per service and fresh NATS stream / bucket names for one test file,
 * dropped when the test ends.
 */
export async function isolate(t: Teardown, keep = process.env.KEEP_TEST_DATA === '1'): Promise<TestIsolation> {
  await ensureTestDatabase()
  const prefix = uniqueName('t').replace('_', '')
  const schemas = new Map<string, string>()
  if (!keep) {
    t.after(async () => {
      await dropSchemas(TEST_DATABASE_URL, [...schemas.values()])
      await dropNatsPrefix(TEST_NATS_URL, prefix)
    })
  }
  return {
    DATABASE_URL: TEST_DATABASE_URL,
    NATS_URL: TEST_NATS_URL,
    NATS_PREFIX: prefix,
    schema(service: string) {
      let s = schemas.get(service)
      if (!s) {
        s = `${service}_${prefix}`
        schemas.set(service, s)
      }
      return s
    }
  }
}

/** Polls until `fn` returns a truthy value or the time is up. */
export async function eventually<T>(
  fn: () => Promise<T> | T,
  { timeoutMs = 5000, intervalMs = 25 } = {}
): Promise<Exclude<T, null | undefined | false | 0 | ''>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const value = await fn()
      if (value) return value as Exclude<T, null | undefined | false | 0 | ''>
    } catch (error) {
      last = error
    }
    await new Promise((r) => setTimeout(r, intervalMs))
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`)
}

/** The configuration every service under test shares: the isolation's database schema and NATS names. */
export function serviceTestConfig(iso: TestIsolation, service: string) {
  return {
    DATABASE_URL: iso.DATABASE_URL,
    NATS_URL: iso.NATS_URL,
    NATS_PREFIX: iso.NATS_PREFIX,
    DB_SCHEMA: iso.schema(service),
    LOG_LEVEL: (process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent',
    OUTBOX_POLL_MS: 100
  }
}

/** How many answers had each status code: `{ 200: 1, 400: 23 }`, for races asserting only 2xx and 4xx. */
export function statusCounts(results: { statusCode: number }[]): Record<number, number> {
  const counts: Record<number, number> = {}
  for (const r of results) counts[r.statusCode] = (counts[r.statusCode] ?? 0) + 1
  return counts
}
export { signToken } from './jwt.js'
