import { availableParallelism } from 'node:os'
import bcrypt from 'bcrypt'
import { ThrottledError } from '@roster/service-kit'

export interface PasswordWorkLimits {
  /** bcrypt operations running at once (each occupies a thread of libuv's pool). */
  concurrency: number
  /** How long an operation may wait for a free slot before it is refused. */
  maxWaitMs: number
  /** Operations that may wait at once; beyond that they are refused at once. */
  maxQueue: number
}

/** libuv's thread pool size: what bcrypt (and fs, dns, zlib, crypto) runs on. */
export function threadPoolSize(): number {
  const size = Number(process.env.UV_THREADPOOL_SIZE)
  return Number.isInteger(size) && size > 0 ? Math.min(size, 1024) : 4
}

/**
 * The default width of the password work queue: the thread pool, but no more than the cores. bcrypt is
 * pure CPU: more of it at once than there are cores finishes nothing sooner and takes the CPU from the
 * event loop that answers everyone else (`pnpm bench flood`).
 */
export function defaultPasswordWorkers(): number {
  return Math.max(1, Math.min(threadPoolSize(), availableParallelism()))
}

/**
 * 429 with Retry-After (DRF's throttled message): the password work queue is full, or a slot would not
 * free up in time. A 429 rather than a 503: the service is up, and the answer tells when to come back.
 */
export class PasswordWorkBusyError extends ThrottledError {
  constructor(retryAfterSeconds: number) {
    super(retryAfterSeconds)
    this.name = 'PasswordWorkBusyError'
  }
}

/**
 * bcrypt hashing and checking, bounded. Every bcrypt call (login, refresh never, registration, password
 * change, the dummy check of an unknown username) takes a slot of a queue as wide as libuv's thread pool,
 * so a flood of logins cannot fill the pool and the CPU with work that nobody is waiting for: beyond the
 * slots, calls wait at most `maxWaitMs` (and at most `maxQueue` of them), then answer 429; a call whose
 * wait would exceed `maxWaitMs` at the pace operations have been taking is answered 429 at once.
 * Nothing here holds a database connection: callers must not call it inside a transaction.
 *
 * A dummy hash lets a login for an unknown user take as long as one for a known user.
 */
export class Passwords {
  private dummy: Promise<string> | null = null
  private running = 0
  private readonly waiting: Array<{ start: () => void }> = []
  /** Moving average of an operation's duration, to refuse at once a wait that would time out anyway. */
  private averageMs = 0
  /** bcrypt operations started (compares and hashes), for tests and metrics. */
  readonly counts = { compares: 0, hashes: 0, refused: 0 }

  constructor(
    private readonly cost: number,
    readonly limits: PasswordWorkLimits = { concurrency: defaultPasswordWorkers(), maxWaitMs: 10_000, maxQueue: 1024 }
  ) {}

  hash(password: string): Promise<string> {
    return this.withSlot(() => {
      this.counts.hashes++
      return bcrypt.hash(password, this.cost)
    })
  }

  async verify(password: string, hash: string | null): Promise<boolean> {
    if (hash === null) {
      this.dummy ??= bcrypt.hash('roster-dummy-password', this.cost)
      const dummy = await this.dummy
      await this.withSlot(() => {
        this.counts.compares++
        return bcrypt.compare(password, dummy)
      })
      return false
    }
    return this.withSlot(() => {
      this.counts.compares++
      return bcrypt.compare(password, hash)
    })
  }

  /** Operations running and waiting now. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length }
  }

  /** Runs `work` in a slot of the queue (bcrypt calls do; tests hold a slot with it). */
  async withSlot<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.limits.concurrency) await this.slot()
    else this.running++
    const started = performance.now()
    try {
      return await work()
    } finally {
      const took = performance.now() - started
      this.averageMs = this.averageMs === 0 ? took : this.averageMs * 0.9 + took * 0.1
      const next = this.waiting.shift()
      // The slot passes straight to the next waiter, so `running` never drops below the limit while
      // someone waits (no newcomer can overtake the queue).
      if (next) next.start()
      else this.running--
    }
  }

  private slot(): Promise<void> {
    const expectedWaitMs = ((this.waiting.length + 1) * this.averageMs) / this.limits.concurrency
    if (this.waiting.length >= this.limits.maxQueue || expectedWaitMs > this.limits.maxWaitMs) {
      this.counts.refused++
      return Promise.reject(new PasswordWorkBusyError(this.limits.maxWaitMs / 1000))
    }
    return new Promise<void>((resolve, reject) => {
      const entry = {
        start: () => {
          clearTimeout(timer)
          resolve()
        }
      }
      const timer = setTimeout(() => {
        const index = this.waiting.indexOf(entry)
        if (index >= 0) this.waiting.splice(index, 1)
        this.counts.refused++
        reject(new PasswordWorkBusyError(this.limits.maxWaitMs / 1000))
      }, this.limits.maxWaitMs)
      this.waiting.push(entry)
    })
  }
}
