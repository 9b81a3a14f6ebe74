import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'

type Check = () => Promise<void> | void

declare module 'fastify' {
  interface FastifyInstance {
    readiness: { add(name: string, check: Check): void }
  }
}

const HealthSchema = Type.Object({
  status: Type.String(),
  checks: Type.Optional(Type.Record(Type.String(), Type.String()))
})

/**
 * `/health` says the process is alive (on every listener: it reveals nothing); `/ready` runs every
 * dependency's check (database, NATS, ...) and is internal: it names them and says which one failed.
 */
export const healthPlugin = fp(
  async function health(app: FastifyInstance, options: { timeoutMs?: number }) {
    const checks = new Map<string, Check>()
    const timeoutMs = options.timeoutMs ?? 2000
    app.decorate('readiness', { add: (name: string, check: Check) => void checks.set(name, check) })

    const tags = ['operations']
    app.get('/health', { schema: { tags, summary: 'liveness', response: { 200: HealthSchema } } }, async () => ({
      status: 'ok'
    }))

    app.get(
      '/ready',
      {
        config: { internal: true },
        schema: {
          tags,
          summary: 'readiness: database and NATS reachable',
          response: { 200: HealthSchema, 503: HealthSchema }
        }
      },
      async (request, reply) => {
        const results: Record<string, string> = {}
        await Promise.all(
          [...checks].map(async ([name, check]) => {
            try {
              await Promise.race([
                check(),
                new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), timeoutMs).unref())
              ])
              results[name] = 'ok'
            } catch (error) {
              results[name] = (error as Error).message || 'failed'
            }
          })
        )
        const ready = Object.values(results).every((r) => r === 'ok')
        if (!ready) request.log.warn({ checks: results }, 'not ready')
        return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', checks: results })
      }
    )
  },
  { name: 'roster-health' }
)
