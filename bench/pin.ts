import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/**
 * CPU pinning for the login scenario, with `taskset` (util-linux): identity gets cores of its own, as
 * it would on its own nodes, and everything else shares the rest. Every mask changed is put back by
 * `restore()`, including PostgreSQL backends forked while the postmaster was pinned.
 */
export class Pinning {
  private readonly saved = new Map<number, string>()
  private readonly restoreByName = new Map<string, string>()

  static available(): boolean {
    try {
      execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  }

  /** Pins every thread of `pid` to `cpus` (a list such as `0` or `1-3`). */
  pin(pid: number, cpus: string): void {
    if (!this.saved.has(pid)) this.saved.set(pid, maskOf(pid))
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' })
  }

  /** Pins every process whose command name is `name` (the machine's `postgres`, `nats-server`). */
  pinNamed(name: string, cpus: string): number {
    const pids = pidsNamed(name)
    if (pids.length && !this.restoreByName.has(name)) this.restoreByName.set(name, maskOf(pids[0]))
    for (const pid of pids) {
      try {
        this.pin(pid, cpus)
      } catch {
        // gone meanwhile
      }
    }
    return pids.length
  }

  restore(): void {
    const set = (pid: number, mask: string) => {
      try {
        execFileSync('taskset', ['-a', '-p', mask, String(pid)], { stdio: 'ignore' })
      } catch {
        // gone meanwhile
      }
    }
    for (const [pid, mask] of this.saved) set(pid, mask)
    for (const [name, mask] of this.restoreByName) for (const pid of pidsNamed(name)) set(pid, mask)
    this.saved.clear()
    this.restoreByName.clear()
  }
}

function maskOf(pid: number): string {
  // "pid 42's current affinity mask: 3"
  return execFileSync('taskset', ['-p', String(pid)], { encoding: 'utf8' })
    .trim()
    .split(': ')
    .pop()!
}

function pidsNamed(name: string): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) pids.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return pids
}
