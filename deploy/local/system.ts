import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { prettyFactory } from 'pino-pretty'
import { choosePort, findFreePort, isPortFree, localUrl, LOOPBACK } from './ports.js'
import { forEachLine, guardChild, hasExited, OutputTail, pollUntil, terminate, type OutputStream } from './processes.js'

export const SERVICE_NAMES = ['identity', 'directory', 'audit', 'gateway'] as const
export type ServiceName = (typeof SERVICE_NAMES)[number]
export type BackendName = Exclude<ServiceName, 'gateway'>
export const BACKEND_NAMES: readonly BackendName[] = ['identity', 'directory', 'audit']

/** The repository root, the working directory every service is started in. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** Preloaded into each child: it stops itself when the launcher's IPC channel closes (the launcher died). */
const EXIT_WITH_LAUNCHER = pathToFileURL(fileURLToPath(new URL('./exit-with-launcher.mjs', import.meta.url))).href

export const SERVICE_DIRS: Readonly<Record<ServiceName, string>> = {
  identity: 'services/identity',
  directory: 'services/directory',
  audit: 'services/audit',
  gateway: 'gateway'
}

export const DEFAULT_PORTS: Readonly<Record<ServiceName, number>> = {
  identity: 3001,
  directory: 3002,
  audit: 3003,
  gateway: 8080
}

/**
 * The internal listener of each process (`INTERNAL_PORT`): `/ready` (polled here), `/metrics`, `/internal/*`
 * read-through and each service's own `/docs`. Nothing outside the machine needs them.
 */
export const DEFAULT_INTERNAL_PORTS: Readonly<Record<ServiceName, number>> = {
  identity: 3101,
  directory: 3102,
  audit: 3103,
  gateway: 9080
}

/** The variable through which the others find a service's internal listener. */
export const INTERNAL_URL_VARIABLES: Readonly<Record<BackendName, string>> = {
  identity: 'IDENTITY_INTERNAL_URL',
  directory: 'DIRECTORY_INTERNAL_URL',
  audit: 'AUDIT_INTERNAL_URL'
}

/** The variable through which the others find a service. */
export const URL_VARIABLES: Readonly<Record<BackendName, string>> = {
  identity: 'IDENTITY_URL',
  directory: 'DIRECTORY_URL',
  audit: 'AUDIT_URL'
}

export type Env = Readonly<Record<string, string | undefined>>
export type LogSink = (service: ServiceName, line: string, stream: OutputStream) => void

export interface StartSystemOptions {
  /** Repository root (default: the one holding this file). */
  rootDir?: string
  /**
   * `tsx` (default): `<dir>/src/server.ts` through tsx. `dist`: `<dir>/dist/server.js` as the images run
   * it (`node --conditions=roster-dist`, after `tsc --build tsconfig.build.json`), so that the bench measures
   * the memory and CPU of what is deployed, without tsx's loader thread.
   */
  runtime?: 'tsx' | 'dist'
  /** What to run (default: all four). Backends start together, the gateway once they are ready. */
  services?: readonly ServiceName[]
  /**
   * Environment shared by every process: DATABASE_URL, NATS_URL, NATS_PREFIX, LOG_LEVEL, ...
   * A key set to `undefined` is removed from what the children inherit.
   */
  env?: Env
  /** Extra environment for one process (say, the identity key and admin for `identity`). */
  serviceEnv?: Partial<Record<ServiceName, Env>>
  /** DB_SCHEMA per backend; default the service's own name. */
  dbSchema?: Partial<Record<BackendName, string>> | ((service: BackendName) => string)
  /** Pass this process's environment on to the children (default true). */
  inheritEnv?: boolean
  /** Interface every process binds (default 127.0.0.1). */
  host?: string
  /** Port per process (default 3001/3002/3003/8080); 0 means a free port picked now. */
  ports?: Partial<Record<ServiceName, number>>
  /**
   * Internal port per process (default 3101/3102/3103/9080, or a free one when its public port is 0);
   * 0 means a free port picked now. A taken internal port always moves to a free one.
   */
  internalPorts?: Partial<Record<ServiceName, number>>
  /**
   * When a requested port is taken: pick a free one (true, or for the listed services)
   * or fail before starting anything (false, default).
   */
  portFallback?: boolean | readonly ServiceName[]
  /** true: write each child's lines to this process's stdout/stderr prefixed with its name; or a sink of your own. */
  pipeLogs?: boolean | LogSink
  /** The launcher's own notices (a skipped service, an unexpected exit). Default: stderr. */
  log?: (message: string) => void
  /** Called when a child exits without being asked to. */
  onExit?: (service: ServiceName, code: number | null, signal: NodeJS.Signals | null) => void
  readyTimeoutMs?: number
  stopTimeoutMs?: number
  /**
   * Supervision: a child that exits without being asked to is started again after a delay that doubles
   * with each exit in a row (from `initialDelayMs`, capped at `maxDelayMs`), and the log says which
   * process died, how, and when it comes back. Default off (tests stop and start services themselves).
   */
  restart?: boolean | RestartPolicy
  /**
   * Start each child in its own process group (default true) so that a terminal's Ctrl-C
   * reaches only the launcher, which then stops them in order; they are still signalled
   * if this process exits without stopping them.
   */
  detached?: boolean
}

export interface RestartPolicy {
  /** Delay before the first restart (default 500 ms). */
  initialDelayMs?: number
  /** Cap of the doubling delay (default 30 s). */
  maxDelayMs?: number
  /** A child that served this long counts as healthy again: the next exit restarts after the initial delay (default 60 s). */
  resetAfterMs?: number
}

/** The delay before restart number `attempt` (1, 2, ...): doubling from the initial delay, capped. */
export function restartDelay(attempt: number, policy: Required<RestartPolicy>): number {
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, attempt - 1))
}

export interface StopServiceOptions {
  /** Default SIGTERM; SIGKILL simulates a crash. */
  signal?: NodeJS.Signals
  /** Wait this long before SIGKILL (default: the system's stopTimeoutMs). */
  timeoutMs?: number
}

export interface RunningSystem {
  /** The gateway's URL, or undefined when the gateway was not started. */
  readonly gatewayUrl: string | undefined
  /** URL of every process that was started (skipped ones are absent). */
  readonly urls: Readonly<Partial<Record<ServiceName, string>>>
  /** URL of every started process's internal listener (`/ready`, `/metrics`, `/internal/*`, a service's `/docs`). */
  readonly internalUrls: Readonly<Partial<Record<ServiceName, string>>>
  readonly services: readonly ServiceName[]
  /** Requested but not started because `<dir>/src/server.ts` does not exist. */
  readonly skipped: readonly ServiceName[]
  isRunning(service: ServiceName): boolean
  /** The process id of a running service (the benchmark pins processes to cores). */
  pid(service: ServiceName): number | undefined
  /** The last lines a process wrote (both streams, oldest first). */
  output(service: ServiceName): string[]
  /** Stops the gateway, then the backends: SIGTERM, then SIGKILL after the timeout. */
  stop(): Promise<void>
  stopService(service: ServiceName, options?: StopServiceOptions): Promise<void>
  /** Starts a stopped service again, on the same port and with the same environment, and waits until it is ready. */
  startService(service: ServiceName): Promise<void>
}

export class ServiceStartError extends Error {
  constructor(
    readonly service: ServiceName,
    reason: string,
    readonly output: readonly string[]
  ) {
    super(
      `${service} ${reason}\nLast output of ${service}:\n${output.length === 0 ? '  (none)' : output.map((l) => `  ${l}`).join('\n')}`
    )
    this.name = 'ServiceStartError'
  }
}

export class PortInUseError extends Error {
  constructor(
    readonly service: ServiceName,
    readonly port: number
  ) {
    super(
      `${service} cannot listen on port ${port}: it is taken by another process. Stop that process or choose another port.`
    )
    this.name = 'PortInUseError'
  }
}

const COLORS: Readonly<Record<ServiceName, string>> = {
  identity: '\u001b[36m',
  directory: '\u001b[35m',
  audit: '\u001b[33m',
  gateway: '\u001b[32m'
}

/** Turns one JSON log line into a human-readable one; anything that is not pino JSON is passed as is. */
export type LineFormatter = (line: string) => string

/**
 * pino-pretty's formatter (time, level, message, then the other fields indented), for a terminal.
 * A line that is not pino's JSON (a stack trace, tsx's own output) comes back unchanged.
 */
export function prettyLines(colorize: boolean): LineFormatter {
  const format = prettyFactory({ colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })
  return (line) => {
    if (!line.startsWith('{')) return line
    try {
      return format(line).replace(/\n$/, '')
    } catch {
      return line
    }
  }
}

/**
 * Each child's lines prefixed with its name; on a terminal in colour and, when `pretty` (default: the
 * stream is a terminal), pino's JSON made human-readable. Piped elsewhere, the JSON lines stay as they are.
 */
export function prefixingSink({ pretty }: { pretty?: boolean } = {}): LogSink {
  const width = Math.max(...SERVICE_NAMES.map((name) => name.length))
  const formatters = new Map<NodeJS.WriteStream, LineFormatter>()
  return (service, line, stream) => {
    const out = stream === 'stderr' ? process.stderr : process.stdout
    const label = service.padEnd(width)
    let text = line
    if (pretty ?? out.isTTY === true) {
      let formatter = formatters.get(out)
      if (formatter === undefined) formatters.set(out, (formatter = prettyLines(out.isTTY === true)))
      // A pretty record spans lines (its fields below the message): each gets the prefix.
      text = formatter(line)
    }
    const prefix = out.isTTY ? `${COLORS[service]}${label} |\u001b[0m ` : `${label} | `
    write(
      out,
      text.includes('\n')
        ? `${text
            .split('\n')
            .map((part) => prefix + part)
            .join('\n')}\n`
        : `${prefix}${text}\n`
    )
  }
}

const pendingOutput = new Map<NodeJS.WriteStream, string>()
// What is still gathered when the launcher exits (close-with-grace ends it with `process.exit`) is written
// then: stdout and stderr are synchronous on pipes and files, so it gets out.
process.once('exit', () => {
  for (const [out, text] of pendingOutput) out.write(text)
  pendingOutput.clear()
})

/**
 * Writes to this process's stdout or stderr once per turn of the event loop with everything gathered
 * meanwhile: both are synchronous on a pipe or a file, and a write(2) per relayed line was most of what
 * the launcher cost per request.
 */
function write(out: NodeJS.WriteStream, text: string): void {
  const pending = pendingOutput.get(out)
  if (pending !== undefined) {
    pendingOutput.set(out, pending + text)
    return
  }
  pendingOutput.set(out, text)
  setImmediate(() => {
    const all = pendingOutput.get(out) ?? ''
    pendingOutput.delete(out)
    out.write(all)
  })
}

/**
 * V8 options every Roster process starts with, as the images start them (`NODE_OPTIONS` in
 * deploy/docker/Dockerfile): a young generation of two 8 MB semi-spaces instead of V8's two 16 MB ones.
 * A busy service grows its young generation to the maximum and keeps it: at 16 MB audit sat at 160–170 MB
 * resident after `pnpm bench`, over the 150 MB the services are sized for; at 8 MB each process stayed
 * at 108–135 MB. The price is twice the scavenges, each about as cheap (a scavenge copies what is alive, a few
 * requests' worth): A/B runs of `pnpm bench reads` (`BENCH_NODE_OPTIONS`) showed no difference in CPU per
 * request beyond the ±20 % that identical runs differ by here (at 4 MB, +8 % on average). A caller's own
 * NODE_OPTIONS come after these, and V8 takes the last value of a flag.
 */
export const SERVICE_NODE_OPTIONS = '--max-semi-space-size=8'

function cleanEnv(env: Record<string, string | undefined>): Record<string, string> {
  const result: Record<string, string> = {}
  for (const [key, value] of Object.entries(env)) if (value !== undefined) result[key] = value
  return result
}

interface Slot {
  name: ServiceName
  port: number
  url: string
  internalUrl: string
  env: Record<string, string>
  output: OutputTail
  child?: ChildProcess
  stopping: boolean
  /** Exits in a row without a healthy run between them. */
  crashes: number
  startedAt: number
  restartTimer?: NodeJS.Timeout
}

/**
 * Starts the requested services and the gateway as child processes
 * (`node --import tsx <dir>/src/server.ts`, cwd = repository root), each once its
 * internal `/ready` answers 200. On any failure everything already started is stopped again.
 */
export async function startSystem(options: StartSystemOptions = {}): Promise<RunningSystem> {
  const rootDir = options.rootDir ?? REPO_ROOT
  const host = options.host ?? LOOPBACK
  const log = options.log ?? ((message: string) => process.stderr.write(`[roster] ${message}\n`))
  const sink: LogSink | undefined = options.pipeLogs === true ? prefixingSink() : options.pipeLogs || undefined
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000
  const detached = options.detached ?? true
  const restartPolicy: Required<RestartPolicy> | undefined = options.restart
    ? {
        initialDelayMs: 500,
        maxDelayMs: 30_000,
        resetAfterMs: 60_000,
        ...(options.restart === true ? {} : options.restart)
      }
    : undefined
  let systemStopped = false
  const requested = SERVICE_NAMES.filter((name) => (options.services ?? SERVICE_NAMES).includes(name))

  const wanted: ServiceName[] = []
  const skipped: ServiceName[] = []
  for (const name of requested) {
    const entry = join(rootDir, SERVICE_DIRS[name], 'src', 'server.ts')
    if (existsSync(entry)) wanted.push(name)
    else {
      skipped.push(name)
      log(`skipping ${name}: ${join(SERVICE_DIRS[name], 'src', 'server.ts')} does not exist`)
    }
  }

  const ports = new Map<ServiceName, number>()
  const taken = new Set<number>()
  for (const name of wanted) {
    const preferred = options.ports?.[name] ?? DEFAULT_PORTS[name]
    let port = preferred
    const fallback = Array.isArray(options.portFallback)
      ? options.portFallback.includes(name)
      : options.portFallback === true
    if (preferred === 0 || fallback) {
      port = (await choosePort(preferred, host)).port
      // Two services picking "any free port" back to back can be handed the same one.
      while (taken.has(port)) port = await findFreePort(host)
    } else if (!(await isPortFree(preferred, host))) {
      throw new PortInUseError(name, preferred)
    }
    if (port !== preferred && preferred !== 0) log(`${name}: port ${preferred} is taken, using ${port}`)
    taken.add(port)
    ports.set(name, port)
  }
  const internalPorts = new Map<ServiceName, number>()
  for (const name of wanted) {
    const preferred = options.internalPorts?.[name] ?? (options.ports?.[name] === 0 ? 0 : DEFAULT_INTERNAL_PORTS[name])
    let port =
      preferred !== 0 && !taken.has(preferred) && (await isPortFree(preferred, host))
        ? preferred
        : await findFreePort(host)
    while (taken.has(port)) port = await findFreePort(host)
    if (preferred !== 0 && port !== preferred) log(`${name}: internal port ${preferred} is taken, using ${port}`)
    taken.add(port)
    internalPorts.set(name, port)
  }

  const sharedEnv = options.env ?? {}
  const urlEnv: Record<string, string> = {}
  for (const name of BACKEND_NAMES) {
    const port = ports.get(name)
    const variable = URL_VARIABLES[name]
    // A skipped service keeps whatever URL the caller gave (it may run elsewhere), else its default.
    urlEnv[variable] =
      port !== undefined ? localUrl(host, port) : (sharedEnv[variable] ?? localUrl(LOOPBACK, DEFAULT_PORTS[name]))
    const internalPort = internalPorts.get(name)
    const internalVariable = INTERNAL_URL_VARIABLES[name]
    urlEnv[internalVariable] =
      internalPort !== undefined
        ? localUrl(host, internalPort)
        : (sharedEnv[internalVariable] ?? localUrl(LOOPBACK, DEFAULT_INTERNAL_PORTS[name]))
  }

  const schemaOf = (name: BackendName): string => {
    const override = typeof options.dbSchema === 'function' ? options.dbSchema(name) : options.dbSchema?.[name]
    return override ?? options.serviceEnv?.[name]?.DB_SCHEMA ?? name
  }

  const slots = new Map<ServiceName, Slot>()
  for (const name of wanted) {
    const port = ports.get(name) ?? DEFAULT_PORTS[name]
    const given = {
      ...(options.inheritEnv === false ? {} : process.env),
      ...sharedEnv,
      ...options.serviceEnv?.[name]
    }
    const env = cleanEnv({
      ...(options.inheritEnv === false ? {} : process.env),
      ...sharedEnv,
      ...urlEnv,
      ...options.serviceEnv?.[name],
      NODE_OPTIONS: given.NODE_OPTIONS ? `${SERVICE_NODE_OPTIONS} ${given.NODE_OPTIONS}` : SERVICE_NODE_OPTIONS,
      // A schema inherited from the caller's shell must not put every service in one schema.
      DB_SCHEMA: name === 'gateway' ? options.serviceEnv?.gateway?.DB_SCHEMA : schemaOf(name),
      HOST: host,
      PORT: String(port),
      INTERNAL_PORT: String(internalPorts.get(name))
    })
    const internalUrl = localUrl(host, internalPorts.get(name)!)
    slots.set(name, {
      name,
      port,
      url: localUrl(host, port),
      internalUrl,
      env,
      output: new OutputTail(),
      stopping: false,
      crashes: 0,
      startedAt: 0
    })
  }

  const spawnService = (slot: Slot): ChildProcess => {
    const child = spawn(
      process.execPath,
      options.runtime === 'dist'
        ? [
            '--conditions=roster-dist',
            '--import',
            EXIT_WITH_LAUNCHER,
            join(SERVICE_DIRS[slot.name], 'dist', 'server.js')
          ]
        : ['--import', 'tsx', '--import', EXIT_WITH_LAUNCHER, join(SERVICE_DIRS[slot.name], 'src', 'server.ts')],
      {
        cwd: rootDir,
        env: slot.env,
        // The IPC channel closes when this process dies, however it dies: the child then stops itself.
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        detached
      }
    )
    slot.child = child
    slot.stopping = false
    slot.startedAt = Date.now()
    guardChild(child)
    for (const stream of ['stdout', 'stderr'] as const) {
      forEachLine(child[stream], (line) => {
        slot.output.push(line, stream)
        sink?.(slot.name, line, stream)
      })
    }
    child.once('error', (error) => slot.output.push(`could not be run: ${error.message}`, 'stderr'))
    child.once('exit', (code, signal) => {
      if (slot.stopping || slot.child !== child) return
      const how = code !== null ? `code ${code}` : `signal ${signal}`
      options.onExit?.(slot.name, code, signal)
      if (restartPolicy === undefined || systemStopped) {
        log(`${slot.name} (pid ${child.pid}) exited unexpectedly (${how})`)
        return
      }
      if (Date.now() - slot.startedAt >= restartPolicy.resetAfterMs) slot.crashes = 0
      slot.crashes++
      const delay = restartDelay(slot.crashes, restartPolicy)
      log(
        `${slot.name} (pid ${child.pid}) exited unexpectedly (${how}); restarting in ${delay} ms (restart ${slot.crashes} in a row)`
      )
      slot.restartTimer = setTimeout(() => {
        slot.restartTimer = undefined
        if (systemStopped || slot.stopping) return
        void restartSlot(slot)
      }, delay)
    })
    return child
  }

  /** Starts a crashed child again; a new exit schedules the next restart, a long silence is only logged. */
  const restartSlot = async (slot: Slot): Promise<void> => {
    const child = spawnService(slot)
    log(`${slot.name} restarted (pid ${child.pid})`)
    const ready = await pollUntil(
      async () => {
        const response = await fetch(`${slot.internalUrl}/ready`, { signal: AbortSignal.timeout(2_000) }).catch(
          () => undefined
        )
        await response?.body?.cancel()
        return response?.status === 200
      },
      {
        timeoutMs: readyTimeoutMs,
        intervalMs: 200,
        stop: () => hasExited(child) || slot.child !== child || systemStopped
      }
    )
    if (ready) log(`${slot.name} is serving again on ${slot.url}`)
    else if (!hasExited(child) && slot.child === child && !systemStopped)
      log(`${slot.name} is not ready ${readyTimeoutMs} ms after its restart; still waiting`)
  }

  const waitReady = async (slot: Slot, child: ChildProcess): Promise<void> => {
    let lastAnswer = 'no answer'
    let spawnFailed = false
    child.once('error', () => (spawnFailed = true))
    const ready = await pollUntil(
      async () => {
        try {
          const response = await fetch(`${slot.internalUrl}/ready`, { signal: AbortSignal.timeout(2_000) })
          await response.body?.cancel()
          lastAnswer = `answered ${response.status}`
          return response.status === 200
        } catch (error) {
          lastAnswer = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message
          return false
        }
      },
      { timeoutMs: readyTimeoutMs, intervalMs: 100, stop: () => spawnFailed || hasExited(child) }
    )
    if (ready) return
    const tail = slot.output.lines(40)
    if (spawnFailed || hasExited(child)) {
      const how =
        child.exitCode !== null
          ? `code ${child.exitCode}`
          : child.signalCode !== null
            ? `signal ${child.signalCode}`
            : 'a spawn error'
      throw new ServiceStartError(slot.name, `exited with ${how} before ${slot.internalUrl}/ready answered 200.`, tail)
    }
    slot.stopping = true
    await terminate(child, { timeoutMs: stopTimeoutMs })
    throw new ServiceStartError(
      slot.name,
      `was not ready within ${readyTimeoutMs} ms: ${slot.internalUrl}/ready last ${lastAnswer.startsWith('answered') ? lastAnswer : `failed (${lastAnswer})`}.`,
      tail
    )
  }

  const startSlot = async (slot: Slot): Promise<void> => {
    if (slot.child !== undefined && !hasExited(slot.child)) throw new Error(`${slot.name} is already running`)
    clearTimeout(slot.restartTimer)
    slot.restartTimer = undefined
    await waitReady(slot, spawnService(slot))
  }

  const stopSlot = async (slot: Slot, stopOptions: StopServiceOptions = {}): Promise<void> => {
    clearTimeout(slot.restartTimer)
    slot.restartTimer = undefined
    const child = slot.child
    if (child === undefined || hasExited(child)) return
    slot.stopping = true
    await terminate(child, {
      signal: stopOptions.signal ?? 'SIGTERM',
      timeoutMs: stopOptions.timeoutMs ?? stopTimeoutMs
    })
  }

  const stopAll = async (): Promise<void> => {
    systemStopped = true
    const gateway = slots.get('gateway')
    if (gateway !== undefined) await stopSlot(gateway)
    await Promise.all([...slots.values()].filter((slot) => slot.name !== 'gateway').map((slot) => stopSlot(slot)))
  }

  const backends = [...slots.values()].filter((slot) => slot.name !== 'gateway')
  const results = await Promise.allSettled(backends.map(startSlot))
  const failures = results.flatMap((result) => (result.status === 'rejected' ? [result.reason as Error] : []))
  const gatewaySlot = slots.get('gateway')
  if (failures.length === 0 && gatewaySlot !== undefined) {
    await startSlot(gatewaySlot).catch((error: Error) => failures.push(error))
  }
  if (failures.length > 0) {
    await stopAll()
    const [first] = failures
    if (failures.length > 1) {
      throw new AggregateError(
        failures,
        `${failures.length} services failed to start:\n\n${failures.map((f) => f.message).join('\n\n')}`
      )
    }
    throw first
  }

  const slotOf = (service: ServiceName): Slot => {
    const slot = slots.get(service)
    if (slot === undefined) {
      throw new Error(`${service} is not part of this system (started: ${[...slots.keys()].join(', ') || 'none'})`)
    }
    return slot
  }
  const urls: Partial<Record<ServiceName, string>> = {}
  const internalUrls: Partial<Record<ServiceName, string>> = {}
  for (const slot of slots.values()) {
    urls[slot.name] = slot.url
    internalUrls[slot.name] = slot.internalUrl
  }

  return {
    gatewayUrl: urls.gateway,
    urls,
    internalUrls,
    services: [...slots.keys()],
    skipped,
    isRunning: (service) => {
      const child = slots.get(service)?.child
      return child !== undefined && !hasExited(child)
    },
    pid: (service) => {
      const child = slots.get(service)?.child
      return child && !hasExited(child) ? child.pid : undefined
    },
    output: (service) => slotOf(service).output.lines(),
    stop: stopAll,
    stopService: async (service, stopOptions) => stopSlot(slotOf(service), stopOptions),
    startService: async (service) => startSlot(slotOf(service))
  }
}
