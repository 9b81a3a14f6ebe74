import { readFileSync, readdirSync, readlinkSync } from 'node:fs'

export type CpuSnapshot = Map<number, { name: string; seconds: number }>

const HZ = 100

/** utime+stime of a process plus those of its waited-for children (`/proc/<pid>/stat` fields 14–17), in seconds. */
function cpuOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / HZ
  } catch {
    return undefined
  }
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  } catch {
    return undefined
  }
}

function pids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
}

/** Local ports of the TCP connections that `pid` holds to port `remotePort` (PostgreSQL's 5432). */
function portsConnectedTo(pid: number, remotePort: number): Set<number> {
  const inodes = new Set<string>()
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`)
        const m = /^socket:\[(\d+)\]$/.exec(link)
        if (m) inodes.add(m[1])
      } catch {}
    }
  } catch {}
  const ports = new Set<number>()
  for (const table of ['tcp', 'tcp6']) {
    let text = ''
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 10 || !inodes.has(f[9])) continue
      if (parseInt(f[2].split(':')[1], 16) === remotePort) ports.add(parseInt(f[1].split(':')[1], 16))
    }
  }
  return ports
}

/**
 * CPU seconds of each named root process, its descendants, and — as `<name> pg` — the PostgreSQL
 * backends serving its connections (found by the client port in the backend's title,
 * `postgres: user db 127.0.0.1(54321) idle`). Other engineers' backends on the same server are not
 * counted. A backend opened meanwhile counts from zero; one closed meanwhile is missing (lower bound).
 */
export function cpuOfSystem(roots: Record<string, number>, pgPort = 5432): CpuSnapshot {
  const all = pids()
  const parent = new Map(all.map((pid) => [pid, parentOf(pid)]))
  const out: CpuSnapshot = new Map()
  const portOwner = new Map<number, string>()
  for (const [name, root] of Object.entries(roots)) {
    const tree = [root]
    for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parent) if (ppid === tree[i]) tree.push(pid)
    for (const pid of tree) {
      const seconds = cpuOf(pid)
      if (seconds !== undefined) out.set(pid, { name, seconds })
      for (const port of portsConnectedTo(pid, pgPort)) portOwner.set(port, name)
    }
  }
  for (const pid of all) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') continue
      const port = /\((\d+)\)/.exec(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))?.[1]
      const owner = port && portOwner.get(Number(port))
      const seconds = cpuOf(pid)
      if (owner && seconds !== undefined) out.set(pid, { name: `${owner} pg`, seconds })
    } catch {}
  }
  return out
}

/**
 * CPU seconds spent between two snapshots, by process name. A process that started meanwhile counts
 * from zero; one that ended meanwhile (a PostgreSQL backend) is missing, so the figures are lower bounds.
 */
export function cpuSpent(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const spent: Record<string, number> = {}
  for (const [pid, { name, seconds }] of after)
    spent[name] = (spent[name] ?? 0) + seconds - (before.get(pid)?.seconds ?? 0)
  return spent
}

/** CPU per request of one measured load, by process, in µs, with the machine's idle rate taken off. */
export interface CpuPerRequest {
  /** Requests the load completed. */
  n: number
  /** µs of CPU per request of each process (`reference` included when it runs, never in `total`). */
  perProcess: Record<string, number>
  /** µs of CPU per request of the system under test (every process but `reference`). */
  total: number
}

/**
 * Measures CPU per request of the system's processes (their descendants and PostgreSQL backends
 * included, see `cpuOfSystem`) for any scenario: `start()` before a load, then the function it returns
 * with the number of requests after it. What each process spends with no request at all (timers, NATS
 * heartbeats, the outbox relay) is measured once by `measureIdle` and taken off every load, or it would
 * count as request CPU where requests are few (bcrypt).
 */
export class CpuMeter {
  #idleRate: Record<string, number> = {}

  constructor(private readonly roots: () => Record<string, number>) {}

  async measureIdle(ms = 5000): Promise<Record<string, number>> {
    const before = cpuOfSystem(this.roots())
    const started = performance.now()
    await new Promise((resolve) => setTimeout(resolve, ms))
    const spent = cpuSpent(before, cpuOfSystem(this.roots()))
    const seconds = (performance.now() - started) / 1000
    this.#idleRate = Object.fromEntries(Object.entries(spent).map(([name, s]) => [name, s / seconds]))
    return this.#idleRate
  }

  start(): (requests: number) => CpuPerRequest {
    const before = cpuOfSystem(this.roots())
    const started = performance.now()
    return (n) => {
      const spent = cpuSpent(before, cpuOfSystem(this.roots()))
      const elapsed = (performance.now() - started) / 1000
      const perProcess = Object.fromEntries(
        Object.entries(spent)
          .map(([name, s]) => [name, s - (this.#idleRate[name] ?? 0) * elapsed] as const)
          .filter(([, s]) => s > 0)
          .map(([name, s]) => [name, (s / Math.max(n, 1)) * 1e6])
      )
      const total = Object.entries(perProcess).reduce((sum, [name, us]) => (name === 'reference' ? sum : sum + us), 0)
      return { n, perProcess, total }
    }
  }
}

/** `gateway 120, identity 300, identity pg 40 µs/req` (sorted by name; the reference left out). */
export function showCpu(cpu: CpuPerRequest, unit: 'µs' | 'ms' = 'µs'): string {
  const scale = unit === 'ms' ? 1000 : 1
  const digits = unit === 'ms' ? 1 : 0
  return `${Object.entries(cpu.perProcess)
    .filter(([name]) => name !== 'reference')
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => `${name} ${(value / scale).toFixed(digits)}`)
    .join(', ')} ${unit} CPU/req`
}
