/**
 * `pnpm start`: the whole of Roster on one machine. PostgreSQL and NATS are started here
 * unless DATABASE_URL / NATS_URL point at running ones.
 */
import closeWithGrace from 'close-with-grace'
import { readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { performance } from 'node:perf_hooks'
import {
  ensureAdminPassword,
  ensureJwtKey,
  NatsServerNotFoundError,
  startEmbeddedPostgres,
  startNatsServer
} from './infra.js'
import { REPO_ROOT, SERVICE_NAMES, startSystem, type Env, type ServiceName } from './system.js'

interface Stoppable {
  name: string
  stop(): Promise<void>
}

const say = (line: string) => process.stdout.write(`[roster] ${line}\n`)
// Output to a reader that is gone (a pipe through a package manager that was killed) is dropped, not fatal:
// the launcher still has services to stop.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {})
const env = process.env
const dataDir = join(REPO_ROOT, '.data')
const shown = (path: string) => {
  const near = relative(process.cwd(), path)
  return near === '' ? '.' : near.startsWith('..') ? path : near
}

// Stopped in reverse order of start: services, then NATS, then PostgreSQL.
const running: Stoppable[] = []
let stopping: Promise<void> | undefined

function stopAll(): Promise<void> {
  stopping ??= (async () => {
    for (const resource of running.reverse()) {
      say(`stopping ${resource.name}`)
      await resource
        .stop()
        .catch((error: unknown) => say(`could not stop ${resource.name}: ${(error as Error).message}`))
    }
    running.length = 0
  })()
  return stopping
}

const grace = closeWithGrace(
  { delay: 45_000, logger: { error: (message: unknown) => say(String(message)) } },
  async ({ signal, err }) => {
    if (err !== undefined) say(`fatal: ${err.stack ?? err.message}`)
    say(signal !== undefined ? `${signal} received, shutting down` : 'shutting down')
    await stopAll()
  }
)

/** `pnpm start identity gateway` runs only those; no names, all four. */
function requestedServices(args: readonly string[]): ServiceName[] {
  const unknown = args.filter((arg) => !(SERVICE_NAMES as readonly string[]).includes(arg))
  if (unknown.length > 0)
    throw new Error(`unknown service ${unknown.join(', ')}; choose from ${SERVICE_NAMES.join(', ')}`)
  return args.length > 0 ? (args as ServiceName[]) : [...SERVICE_NAMES]
}

function gatewayPort(value: string | undefined): number {
  if (value === undefined || value === '') return 8080
  const port = Number(value)
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new Error(`PORT must be a port number, not "${value}"`)
  return port
}

async function main(): Promise<void> {
  const services = requestedServices(process.argv.slice(2))
  const port = gatewayPort(env.PORT)
  let databaseUrl = env.DATABASE_URL
  let databaseNote = 'from DATABASE_URL'
  if (databaseUrl === undefined || databaseUrl === '') {
    const postgres = await startEmbeddedPostgres({ dataDir: join(dataDir, 'pg') })
    running.push({ name: 'PostgreSQL', stop: postgres.stop })
    databaseUrl = postgres.url
    databaseNote = `embedded, data in ${shown(postgres.dataDir)}${postgres.portFellBack ? ', 5432 was taken' : ''}`
    if (postgres.dataDirMoved !== undefined) say(postgres.dataDirMoved)
    say(`PostgreSQL on 127.0.0.1:${postgres.port} (${databaseNote})`)
  }

  let natsUrl = env.NATS_URL
  let natsNote = 'from NATS_URL'
  if (natsUrl === undefined || natsUrl === '') {
    const nats = await startNatsServer({ dataDir: join(dataDir, 'nats') })
    running.push({ name: 'NATS', stop: nats.stop })
    natsUrl = nats.url
    natsNote = `nats-server with JetStream, data in ${shown(nats.dataDir)}${nats.portFellBack ? ', 4222 was taken' : ''}`
    say(`NATS on ${nats.url} (${natsNote})`)
  }

  const identityEnv: Record<string, string | undefined> = {}
  if (!env.ROSTER_JWT_PRIVATE_KEY && !env.ROSTER_JWT_PRIVATE_KEY_FILE) {
    identityEnv.ROSTER_JWT_PRIVATE_KEY_FILE = await ensureJwtKey(dataDir)
  }
  const adminUsername = env.ROSTER_ADMIN_USERNAME || 'admin'
  identityEnv.ROSTER_ADMIN_USERNAME = adminUsername
  let passwordNote = 'as set in ROSTER_ADMIN_PASSWORD'
  if (!env.ROSTER_ADMIN_PASSWORD) {
    const admin = await ensureAdminPassword(dataDir)
    identityEnv.ROSTER_ADMIN_PASSWORD = admin.password
    passwordNote = `in ${shown(admin.path)}`
  }

  const shared: Env = {
    DATABASE_URL: databaseUrl,
    NATS_URL: natsUrl,
    LOG_LEVEL: env.LOG_LEVEL || 'info',
    // PORT and DB_SCHEMA of this shell describe the launcher, not each service.
    PORT: undefined,
    DB_SCHEMA: undefined
  }
  const system = await startSystem({
    services,
    env: shared,
    serviceEnv: { identity: identityEnv },
    host: env.HOST || '127.0.0.1',
    ports: { gateway: port },
    // The backends are internal: if 3001-3003 are taken they move; the gateway's port is the one people open.
    portFallback: ['identity', 'directory', 'audit'],
    // JSON lines made human-readable when the output is a terminal, JSON as it is otherwise.
    pipeLogs: true,
    // A process that dies is started again, with a doubling delay, and the log says so.
    restart: true,
    log: say,
    readyTimeoutMs: 60_000
  })
  running.push({ name: 'services', stop: system.stop })

  const seconds = (performance.now() / 1000).toFixed(1)
  const gateway = system.gatewayUrl
  const lines = [
    '',
    `Roster is up in ${seconds} s.`,
    gateway !== undefined
      ? `  API docs     ${gateway}/docs/`
      : '  (no gateway: gateway/src/server.ts does not exist yet)',
    gateway !== undefined ? `  API          ${gateway}/api/` : undefined,
    `  Admin        ${adminUsername} (password ${passwordNote})`,
    ...system.services
      .filter((name) => name !== 'gateway')
      .map((name) => `  ${name.padEnd(12)} ${system.urls[name]} (internal ${system.internalUrls[name]})`),
    gateway !== undefined ? `  Metrics      ${system.internalUrls.gateway}/metrics (internal, as /ready)` : undefined,
    system.skipped.length > 0 ? `  Not started  ${system.skipped.join(', ')} (no src/server.ts yet)` : undefined,
    `  PostgreSQL   ${databaseNote}`,
    `  NATS         ${natsUrl} (${natsNote})`,
    'Press Ctrl-C to stop.',
    ''
  ]
  process.stdout.write(`${lines.filter((line) => line !== undefined).join('\n')}\n`)
}

/**
 * `pnpm start` runs this under `sh -c`; a SIGTERM or SIGKILL sent to pnpm alone (`timeout`, a supervisor that
 * signals one pid) ends pnpm without passing it on, and the system would keep running with nobody to stop it.
 * When a package manager started us, its exit is taken as the signal to stop.
 */
async function packageManagerPid(): Promise<number | undefined> {
  if (env.npm_lifecycle_event === undefined) return undefined
  let pid = process.ppid
  for (let depth = 0; depth < 3 && pid > 1; depth++) {
    const commandLine = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (/(^|[/\0])(pnpm|npm|yarn)(\.c?js)?(\0|$)/.test(commandLine)) return pid
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  }
  return undefined
}

function stopWithPackageManager(pid: number): void {
  const timer = setInterval(() => {
    try {
      process.kill(pid, 0)
    } catch {
      clearInterval(timer)
      say(`the package manager that started Roster (pid ${pid}) is gone`)
      process.kill(process.pid, 'SIGTERM')
    }
  }, 1000)
  timer.unref()
}

try {
  const manager = await packageManagerPid()
  if (manager !== undefined) stopWithPackageManager(manager)
  await main()
} catch (error) {
  grace.uninstall()
  // The message carries what matters (a child's last output, how to install nats-server); the stack only on request.
  const detail =
    env.LOG_LEVEL === 'debug' || env.LOG_LEVEL === 'trace' ? (error as Error).stack : (error as Error).message
  say(
    error instanceof NatsServerNotFoundError ? (error as Error).message : `could not start: ${detail ?? String(error)}`
  )
  await stopAll()
  process.exitCode = 1
}
