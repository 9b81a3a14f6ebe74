import { setFlagsFromString } from 'node:v8'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { listenInternal } from './internal.js'
import { collectWhenIdle } from './idle-collect.js'

export interface ListenOptions {
  host: string
  /** The public listener. */
  port: number
  /** The internal listener (`/internal/*`, `/metrics`, `/ready`, a service's `/docs`); same interface. */
  internalPort: number
}

export interface RunOptions extends ListenOptions {
  /** V8's `--heap-growing-percent` (HEAP_GROWING_PERCENT); 0 or absent: V8's own. */
  heapGrowingPercent?: number
  /** IDLE_COLLECT_SECONDS: a full collection after this long quiet (see `IdleCollector`); 0 or absent: never. */
  idleCollectSeconds?: number
}

/**
 * Listens on both ports and closes gracefully on SIGTERM, SIGINT and close-with-grace's other signals (SIGHUP,
 * SIGQUIT, SIGUSR2 among them: a heap snapshot is asked for with `--heapsnapshot-signal=SIGWINCH`, not the usual
 * SIGUSR2, which would stop the process); for `src/server.ts` of each service.
 */
export async function listen(app: FastifyInstance, options: ListenOptions): Promise<void> {
  closeWithGrace({ delay: 10_000 }, async ({ err, signal }) => {
    if (err) app.log.error({ err }, 'closing after an error')
    else app.log.info({ signal }, 'closing')
    await app.close()
  })
  // Public first: `/ready` (internal, what a launcher or a kubelet polls) answers once both listen.
  try {
    await app.listen({ host: options.host, port: options.port })
    await listenInternal(app, { host: options.host, port: options.internalPort })
  } catch (error) {
    await app.close().catch(() => undefined)
    throw error
  }
}

/**
 * Builds and starts a service; a failure is logged and leaves a non-zero exit code.
 *
 * The heap's growth is bounded first. After each full collection V8 lets the old generation grow to up to
 * 4 times what survived it when allocation is fast, as it is under load; a service whose live heap is
 * 30–45 MB then sat at 100–150 MB of heap (170–220 MB resident) long after the load, the garbage uncollected.
 * At 50 % it stays near 1.5 times the live heap, for a few more (mostly concurrent) full collections.
 * Set before anything is allocated: V8 reads the factor each time it sets the next limit.
 * Once listening, a quiet spell gives back the heap a load (or the start-up) left (`idleCollectSeconds`).
 */
export async function run(build: () => Promise<FastifyInstance>, options: RunOptions): Promise<void> {
  if (options.heapGrowingPercent) setFlagsFromString(`--heap-growing-percent=${options.heapGrowingPercent}`)
  try {
    const app = await build()
    await listen(app, options)
    if (options.idleCollectSeconds) {
      const stop = collectWhenIdle(options.idleCollectSeconds, (fact) => app.log.info(fact, 'quiet: heap collected'))
      app.server.once('close', stop)
    }
  } catch (error) {
    console.error(error)
    process.exitCode = 1
  }
}
