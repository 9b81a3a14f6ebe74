import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { listenInternal } from './internal.js'

export interface ListenOptions {
  host: string
  /** The public listener. */
  port: number
  /** The internal listener (`/internal/*`, `/metrics`, `/ready`, a service's `/docs`); same interface. */
  internalPort: number
}

/** Listens on both ports and closes gracefully on SIGINT/SIGTERM; for `src/server.ts` of each service. */
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

/** Builds and starts a service; a failure is logged and leaves a non-zero exit code. */
export async function run(build: () => Promise<FastifyInstance>, options: ListenOptions): Promise<void> {
  try {
    const app = await build()
    await listen(app, options)
  } catch (error) {
    console.error(error)
    process.exitCode = 1
  }
}
