import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Kvm, type KV } from '@nats-io/kv'
import { REVOKED_SESSIONS_BUCKET } from '@roster/contracts'

export interface Revocations {
  isRevoked(sid: string): boolean
  /** Remembers a revocation locally at once (the KV write is the caller's, usually through the outbox). */
  remember(sid: string, expiresAtSeconds: number): void
  /** Writes a revocation to the shared bucket. */
  publish(sid: string, expiresAtSeconds: number): Promise<void>
  /** Resolves once the initial contents of the bucket have been read. */
  readonly ready: Promise<void>
  readonly size: number
}

/**
 * Internal response header: the sessions an answer of identity has just ended, `sid,exp;sid,exp`. The
 * gateway that carries the answer adds them to its revocation list before the client sees the answer,
 * and strips the header. Only a bounded number fit; the rest reach the gateway through the bucket.
 */
export const REVOKED_SESSIONS_HEADER = 'x-roster-revoked-sessions'
export const REVOKED_SESSIONS_HEADER_MAX = 200
const SID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export function formatRevokedSessions(revoked: { sid: string; exp: number }[]): string {
  return revoked
    .slice(0, REVOKED_SESSIONS_HEADER_MAX)
    .map((r) => `${r.sid},${r.exp}`)
    .join(';')
}

/** The well-formed entries of the header (anything else in it is ignored). */
export function parseRevokedSessions(value: string | string[] | undefined): { sid: string; exp: number }[] {
  if (value === undefined) return []
  const text = Array.isArray(value) ? value.join(';') : value
  return text
    .split(';')
    .slice(0, REVOKED_SESSIONS_HEADER_MAX)
    .flatMap((entry) => {
      const [sid, exp, extra] = entry.trim().split(',')
      const seconds = Number(exp)
      return extra === undefined && sid !== undefined && SID.test(sid) && Number.isSafeInteger(seconds) && seconds > 0
        ? [{ sid, exp: seconds }]
        : []
    })
}

declare module 'fastify' {
  interface FastifyInstance {
    revocations: Revocations
  }
}

async function openBucket(app: FastifyInstance, ttlMs: number): Promise<KV> {
  const kvm = new Kvm(app.nats.js)
  const name = app.nats.names.bucket(REVOKED_SESSIONS_BUCKET)
  try {
    return await kvm.create(name, { ttl: ttlMs, history: 1 })
  } catch {
    return kvm.open(name)
  }
}

/**
 * Revoked session ids, shared through a NATS KV bucket whose entries live as long as a refresh token.
 * Each replica of each service keeps a watched in-memory copy, so a revoked token is refused everywhere
 * within moments and with no database round trip per request.
 */
export const revocationPlugin = fp(
  async function revocation(app: FastifyInstance, options: { ttlSeconds: number }) {
    const revoked = new Map<string, number>()
    const kv = await openBucket(app, options.ttlSeconds * 1000)
    let closed = false
    let markReady!: () => void
    const ready = new Promise<void>((resolve) => (markReady = resolve))

    async function watch() {
      while (!closed) {
        try {
          const watcher = await kv.watch()
          stopWatch = () => watcher.stop()
          if ((await kv.status()).values === 0) markReady()
          for await (const entry of watcher) {
            if (!entry.delta) markReady()
            if (entry.operation === 'PUT') {
              let exp = Math.floor(Date.now() / 1000) + options.ttlSeconds
              try {
                exp = Number(entry.json<{ exp: number }>().exp) || exp
              } catch {
                // A value we do not understand still revokes the session.
              }
              revoked.set(entry.key, exp)
            } else {
              revoked.delete(entry.key)
            }
          }
        } catch (error) {
          if (!closed) app.log.warn({ err: error }, 'revocation watcher stopped; restarting')
        }
        if (!closed) await new Promise((r) => setTimeout(r, 1000))
      }
    }
    let stopWatch = () => {}
    const watching = watch()

    // Entries of expired tokens can go: those tokens are refused for their expiry anyway.
    const pruner = setInterval(() => {
      const now = Math.floor(Date.now() / 1000)
      for (const [sid, exp] of revoked) if (exp < now) revoked.delete(sid)
    }, 60_000)
    pruner.unref()

    app.decorate('revocations', {
      isRevoked: (sid: string) => revoked.has(sid),
      remember: (sid: string, exp: number) => void revoked.set(sid, exp),
      publish: async (sid: string, exp: number) => {
        revoked.set(sid, exp)
        await kv.put(sid, JSON.stringify({ exp }))
      },
      ready,
      get size() {
        return revoked.size
      }
    } satisfies Revocations)

    app.readiness.add('revocations', async () => {
      let settled = false
      await Promise.race([ready.then(() => (settled = true)), new Promise((r) => setTimeout(r, 0))])
      if (!settled) throw new Error('revocation list not loaded yet')
    })
    app.addHook('onReady', async () => {
      await Promise.race([ready, new Promise((r) => setTimeout(r, 5000).unref())])
    })
    app.addHook('preClose', async () => {
      closed = true
      clearInterval(pruner)
      stopWatch()
      await Promise.race([watching, new Promise((r) => setTimeout(r, 2000).unref())])
    })
  },
  { name: 'roster-revocation', dependencies: ['roster-nats', 'roster-health'] }
)
