import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * Under this share of one core a process counts as quiet. An idle service's own timers (outbox polls, NATS
 * heartbeats and pulls, probes) take 2 % of a core here, in bursts; a loaded one takes 20 % and more.
 */
export const QUIET_SHARE = 0.05
/** How much the heap must have grown since the last collection here before a quiet spell brings another. */
export const GROWTH_BYTES = 8 * 1024 * 1024

/**
 * V8's full collection as a function. It is taken once from a fresh context made while `--expose-gc` is on,
 * and the flag goes off again at once, so no other context, the process's own included, gets a global `gc`.
 */
export function fullCollection(): () => void {
  setFlagsFromString('--expose-gc')
  try {
    return runInNewContext('gc') as () => void
  } finally {
    setFlagsFromString('--no-expose-gc')
  }
}

export interface IdleCollectorOptions {
  /** Quiet this long before collecting. */
  quietMs: number
  /** CPU the process has used so far, µs (`process.cpuUsage()`, user + system). */
  cpuMicros: () => number
  /** The V8 heap's size now, bytes (committed, not only live). */
  heapBytes: () => number
  collect: () => void
  /** Told of each collection: the heap before and after, and how long it took. */
  collected?: (fact: { heapBeforeMb: number; heapAfterMb: number; ms: number }) => void
}

/**
 * Decides, one `tick` at a time, when a quiet process collects its heap. Under load V8 lets the heap grow and
 * keeps it when the load stops: Node gives V8 no idle time in which to shrink it, so a service sat at the
 * resident size of its busiest moment (identity: 160 MB after a few seconds of user lists, 119 after one full
 * collection; 139 right after start, 115 after one). After `quietMs` under `QUIET_SHARE` of a core, one full
 * collection gives the garbage back; another comes only once the heap has grown by `GROWTH_BYTES` since.
 */
export class IdleCollector {
  #lastCpu: number
  #lastAt: number
  #quietMs = 0
  /** The heap's size after the last collection here; undefined before the first (start-up leaves garbage). */
  #collectedAt: number | undefined

  constructor(
    private readonly options: IdleCollectorOptions,
    now: number
  ) {
    this.#lastCpu = options.cpuMicros()
    this.#lastAt = now
  }

  /** Called every few seconds with the time now (ms); answers whether it collected. */
  tick(now: number): boolean {
    const cpu = this.options.cpuMicros()
    const elapsedMs = Math.max(1, now - this.#lastAt)
    const share = (cpu - this.#lastCpu) / 1000 / elapsedMs
    this.#lastCpu = cpu
    this.#lastAt = now
    this.#quietMs = share < QUIET_SHARE ? this.#quietMs + elapsedMs : 0
    if (this.#quietMs < this.options.quietMs) return false
    const before = this.options.heapBytes()
    if (this.#collectedAt !== undefined && before < this.#collectedAt + GROWTH_BYTES) return false
    const started = performance.now()
    this.options.collect()
    const ms = performance.now() - started
    this.#collectedAt = this.options.heapBytes()
    // The collection's own CPU does not end the quiet spell.
    this.#lastCpu = this.options.cpuMicros()
    const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10
    this.options.collected?.({ heapBeforeMb: mb(before), heapAfterMb: mb(this.#collectedAt), ms: Math.round(ms) })
    return true
  }
}

/**
 * Starts an `IdleCollector` on the process: checks every few seconds (an unref'd timer, which never keeps the
 * process alive), collects after `quietSeconds` quiet. Answers the function that stops it.
 */
export function collectWhenIdle(quietSeconds: number, collected: IdleCollectorOptions['collected']): () => void {
  const cpuMicros = () => {
    const { user, system } = process.cpuUsage()
    return user + system
  }
  const collector = new IdleCollector(
    {
      quietMs: quietSeconds * 1000,
      cpuMicros,
      heapBytes: () => getHeapStatistics().total_heap_size,
      collect: fullCollection(),
      collected
    },
    Date.now()
  )
  const stepMs = Math.min(5000, Math.max(500, (quietSeconds * 1000) / 2))
  const timer = setInterval(() => collector.tick(Date.now()), stepMs)
  timer.unref()
  return () => clearInterval(timer)
}
