import { readFileSync, readdirSync } from 'node:fs'

export type CpuSnapshot = Map<number, { name: string; seconds: number }>

/** CPU seconds of every process of the system under test, by pid (a diagnostic for the login scenario). */
export function cpuByProcess(): CpuSnapshot {
  const hz = 100
  const out: CpuSnapshot = new Map()
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const ticks = Number(fields[11]) + Number(fields[12])
      const name = /services\/(\w+)/.exec(cmd)?.[1] ?? (/gateway\/src/.test(cmd) ? 'gateway' : /postgres/.test(cmd) ? 'postgres' : /nats-server/.test(cmd) ? 'nats' : /bench\/run/.test(cmd) ? 'bench' : null)
      if (name) out.set(Number(pid), { name, seconds: ticks / hz })
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
  for (const [pid, { name, seconds }] of after) spent[name] = (spent[name] ?? 0) + seconds - (before.get(pid)?.seconds ?? 0)
  return spent
}
