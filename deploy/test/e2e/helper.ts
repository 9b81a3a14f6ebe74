import { generateKeyPairSync } from 'node:crypto'
import { isolate } from '@roster/service-kit/testing'
import {
  startSystem,
  type LogSink,
  type RestartPolicy,
  type RunningSystem,
  type ServiceName
} from '../../local/system.js'
import { OpenApiChecker, type Answer } from './openapi-check.js'

export const ADMIN = { username: 'e2e-admin', password: 'e2e-admin-pass-1' }

interface TestLike {
  after(fn: () => unknown): void
  /** tap's `t.fail`: an answer that the OpenAPI document does not describe fails the test that got it. */
  fail?(message: string): unknown
}

/** The test that started the gateway at a URL: the one `client(url)` reports a mismatch to. */
const testOfGateway = new Map<string, TestLike>()

export interface E2EOptions {
  /** Receives every line every process writes, whole (a process's `output()` keeps only the last lines). */
  onLog?: LogSink
  /** Supervise the processes as `pnpm start` does (restart what dies); default off. */
  restart?: boolean | RestartPolicy
  /** The launcher's own notices (an unexpected exit, a restart); default stderr. */
  log?: (message: string) => void
}

/**
 * The system as a client meets it: each service and the gateway as its own process, on the machine's
 * PostgreSQL and NATS, with fresh schemas and stream names.
 */
export async function startE2E(
  t: TestLike,
  services: ServiceName[],
  env: Record<string, string> = {},
  options: E2EOptions = {}
): Promise<RunningSystem & { iso: Awaited<ReturnType<typeof isolate>> }> {
  const [system] = await startReplicas(t, services, 1, env, options)
  return system
}

/** What any process needs from its parent's environment (where programs and temporary files are). */
function processBasics(): Record<string, string> {
  const names = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ']
  return Object.fromEntries(
    names.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]!]]))
  )
}

/**
 * `count` copies of the same system (every service and the gateway) on one database and one NATS, as
 * replicas in a cluster: the same schemas, stream names and signing key, each copy on its own ports.
 * They start at the same time, as pods of a new deployment would.
 */
export async function startReplicas(
  t: TestLike,
  services: ServiceName[],
  count: number,
  env: Record<string, string> = {},
  options: E2EOptions = {}
): Promise<(RunningSystem & { iso: Awaited<ReturnType<typeof isolate>> })[]> {
  const iso = await isolate(t)
  const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const start = () =>
    startSystem({
      services,
      // What the services read is what is written here, never what the caller's shell happens to hold.
      inheritEnv: false,
      ports: Object.fromEntries(services.map((s) => [s, 0])),
      internalPorts: Object.fromEntries(services.map((s) => [s, 0])),
      env: {
        ...processBasics(),
        DATABASE_URL: iso.DATABASE_URL,
        NATS_URL: iso.NATS_URL,
        NATS_PREFIX: iso.NATS_PREFIX,
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
        OUTBOX_POLL_MS: '200',
        ...env
      },
      dbSchema: (service) => iso.schema(service),
      serviceEnv: {
        identity: {
          ROSTER_JWT_PRIVATE_KEY: key,
          ROSTER_ADMIN_USERNAME: ADMIN.username,
          ROSTER_ADMIN_PASSWORD: ADMIN.password,
          BCRYPT_COST: '4'
        }
      },
      pipeLogs: options.onLog ?? (process.env.TEST_LOG_LEVEL ? true : false),
      // A loaded machine of this kind has taken more than a minute to start four services at once.
      readyTimeoutMs: 180_000,
      restart: options.restart,
      log: options.log
    })
  const started = await Promise.allSettled(Array.from({ length: count }, start))
  const systems = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
  t.after(() => Promise.all(systems.map((system) => system.stop())))
  for (const system of systems) if (system.gatewayUrl) testOfGateway.set(system.gatewayUrl, t)
  t.after(() => {
    for (const system of systems) if (system.gatewayUrl) testOfGateway.delete(system.gatewayUrl)
  })
  const failed = started.find((s) => s.status === 'rejected')
  if (failed) throw (failed as PromiseRejectedResult).reason
  return systems.map((system) => Object.assign(system, { iso }))
}

/** The merged OpenAPI document of a gateway, read once from its `/docs/json` (again once if a path is missing from it). */
const checkers = new Map<string, Promise<OpenApiChecker>>()
const reread = new Set<string>()
function checkerOf(base: string, fresh = false): Promise<OpenApiChecker> {
  let checker = checkers.get(base)
  if (!checker || fresh) {
    checker = (async () => {
      const response = await fetch(`${base}/docs/json`)
      if (response.status !== 200) throw new Error(`${base}/docs/json answered ${response.status}`)
      return new OpenApiChecker(await response.json())
    })()
    checker.catch(() => checkers.delete(base))
    checkers.set(base, checker)
  }
  return checker
}

/**
 * What the OpenAPI document says is wrong with an answer of the gateway at `base` (status not documented
 * for the operation, body not matching its schema, a required header missing); empty when nothing is.
 */
export async function undocumented(base: string, answer: Answer): Promise<string[]> {
  let checker = await checkerOf(base)
  // A document read before every service had answered the gateway's merge may lack a service's paths:
  // read once more (once per gateway) before an /api path is taken to be no operation.
  if (answer.path.startsWith('/api') && checker.template(answer.path) === undefined && !reread.has(base)) {
    reread.add(base)
    checker = await checkerOf(base, true)
  }
  return checker.check(answer)
}

/**
 * A tiny client of the gateway, as a black-box test would write it. Every answer is checked against the
 * gateway's merged OpenAPI document: a mismatch fails the test that started that gateway (`t.fail`,
 * one per answer, so a run lists all of them), or throws where no test is known.
 */
export function client(base: string) {
  return async function call(
    method: string,
    path: string,
    options: { token?: string; body?: unknown; headers?: Record<string, string> } = {}
  ) {
    const headers: Record<string, string> = { ...options.headers }
    if (options.token) headers.authorization = `Bearer ${options.token}`
    if (options.body !== undefined) headers['content-type'] = 'application/json'
    const response = await fetch(base + path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body)
    })
    const text = await response.text()
    let json: any = null
    try {
      json = text ? JSON.parse(text) : null
    } catch {
      json = null
    }
    const problems = await undocumented(base, {
      method,
      path,
      status: response.status,
      headers: response.headers,
      text
    }).catch((error: Error) => [`the OpenAPI document could not be read: ${error.message}`])
    if (problems.length > 0) {
      const message = `the OpenAPI document does not describe ${method} ${path.split('?')[0]} → ${response.status}: ${problems.join('; ')}`
      const t = testOfGateway.get(base)
      if (t?.fail) t.fail(message)
      else throw new Error(message)
    }
    return { status: response.status, headers: response.headers, json, text }
  }
}

/** Runs `count` calls of `fn`, at most `concurrency` at a time, and returns their results in order. */
export async function pool<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count)
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++
        results[i] = await fn(i)
      }
    })
  )
  return results
}

/** How many log rows audit shows for a user (optionally of one operation), read through the gateway. */
export async function logCount(
  api: ReturnType<typeof client>,
  adminToken: string,
  userId: number,
  operation?: number
): Promise<number> {
  const query = operation === undefined ? '' : `?operation=${operation}`
  const res = await api('GET', `/api/users/${userId}/user-logs/${query}`, { token: adminToken })
  if (res.status !== 200) throw new Error(`${res.status} ${res.text}`)
  return Number(res.headers.get('x-total-count'))
}
