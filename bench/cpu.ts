import { readFileSync, readdirSync } from 'node:fs'
// CPU seconds per process name group, from /proc (a diagnostic for the login scenario).
export function cpuByProcess(): Record<string, number> {
  const hz = 100
  const out: Record<string, number> = {}
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const ticks = Number(fields[11]) + Number(fields[12])
      const name = /services\/(\w+)/.exec(cmd)?.[1] ?? (/gateway\/src/.test(cmd) ? 'gateway' : /postgres/.test(cmd) ? 'postgres' : /nats-server/.test(cmd) ? 'nats' : /bench\/run/.test(cmd) ? 'bench' : null)
      if (name) out[name] = (out[name] ?? 0) + ticks / hz
    } catch {}
  }
  return out
}
