import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'

/** Listens and closes gracefully on SIGINT/SIGTERM; for `src/server.ts` of each service. */
export async function listen(app: FastifyInstance, host: string, port: number): Promise<void> {
  closeWithGrace({ delay: 10_000 }, async ({ err, signal }) => {
    if (err) app.log.error({ err }, 'closing after an error')
    else app.log.info({ signal }, 'closing')
    await app.close()
  })
  await app.listen({ host, port })
}

/** Builds and starts a service; a failure is logged and leaves a non-zero exit code. */
export async function run(build: () => Promise<FastifyInstance>, host: string, port: number): Promise<void> {
  try {
    const app = await build()
    await listen(app, host, port)
  } catch (error) {
    console.error(error)
    process.exitCode = 1
  }
}
