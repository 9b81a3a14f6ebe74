import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream'
import { STREAMS, type EventSubject, type StreamKey } from '@roster/contracts'

/** Names on NATS, prefixed with NATS_PREFIX so test runs (and tenants) never meet. */
export class NatsNames {
  constructor(readonly prefix: string) {}

  subject(subject: EventSubject | string): string {
    return this.prefix ? `${this.prefix}.${subject}` : subject
  }

  /** The contract subject of a prefixed one, or null when it is not ours. */
  unprefix(subject: string): string | null {
    if (!this.prefix) return subject
    return subject.startsWith(`${this.prefix}.`) ? subject.slice(this.prefix.length + 1) : null
  }

  stream(key: StreamKey): string {
    return this.prefix ? `${this.prefix}_${STREAMS[key].name}` : STREAMS[key].name
  }

  bucket(name: string): string {
    return this.prefix ? `${this.prefix}_${name}` : name
  }

  durable(name: string): string {
    return this.prefix ? `${this.prefix}_${name}` : name
  }
}

export interface Nats {
  nc: NatsConnection
  js: JetStreamClient
  jsm: JetStreamManager
  names: NatsNames
  /** Creates the stream when missing (producers and consumers both call it; the first one wins). */
  ensureStream(key: StreamKey): Promise<string>
  /** Calls `listener` each time the connection is back after a loss (the outbox publishes what waited). */
  onReconnect(listener: () => void): void
  /** False between a disconnect and the reconnect that follows it. */
  connected(): boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    nats: Nats
  }
}

export interface NatsOptions {
  url: string
  prefix: string
  name: string
}

const NS_PER_MS = 1_000_000

export async function connectNats(options: NatsOptions, log: FastifyInstance['log']): Promise<Nats> {
  const nc = await connect({
    servers: options.url.split(','),
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: true,
    // No Error made ahead of every request and publish to carry its caller's stack in case it times out:
    // capturing it was ~4 % of identity's main thread per login (the outbox relay's JetStream publishes). A
    // timeout is still a TimeoutError, which the relay and the consumers log with their own context.
    noAsyncTraces: true
  })
  const reconnected = new Set<() => void>()
  let connected = true
  ;(async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect')
        log.warn({ nats: status.type }, 'NATS connection changed')
      if (status.type === 'disconnect') connected = false
      if (status.type === 'reconnect') {
        connected = true
        for (const listener of reconnected) listener()
      }
    }
  })().catch(() => undefined)
  const jsm = await jetstreamManager(nc)
  const js = jetstream(nc)
  const names = new NatsNames(options.prefix)
  const ensured = new Map<StreamKey, Promise<string>>()

  async function ensureStream(key: StreamKey): Promise<string> {
    const name = names.stream(key)
    try {
      await jsm.streams.info(name)
    } catch {
      try {
        await jsm.streams.add({
          name,
          subjects: STREAMS[key].subjects.map((s) => names.subject(s)),
          duplicate_window: 10 * 60 * 1000 * NS_PER_MS
        })
      } catch (error) {
        // Another replica created it in between.
        await jsm.streams.info(name).catch(() => {
          throw error
        })
      }
    }
    return name
  }

  return {
    nc,
    js,
    jsm,
    names,
    onReconnect: (listener) => void reconnected.add(listener),
    connected: () => connected,
    ensureStream: (key) => {
      let p = ensured.get(key)
      if (!p) {
        p = ensureStream(key)
        p.catch(() => ensured.delete(key))
        ensured.set(key, p)
      }
      return p
    }
  }
}

/** One NATS connection per service, JetStream on it, drained when the app closes. */
export const natsPlugin = fp(
  async function nats(app: FastifyInstance, options: NatsOptions & { streams?: StreamKey[] }) {
    const nats = await connectNats(options, app.log)
    for (const key of options.streams ?? []) await nats.ensureStream(key)
    app.decorate('nats', nats)
    app.addHook('onClose', async () => {
      await nats.nc.drain().catch(() => undefined)
    })
    app.readiness.add('nats', async () => {
      if (nats.nc.isClosed()) throw new Error('closed')
      await nats.nc.flush()
    })
  },
  { name: 'roster-nats', dependencies: ['roster-health'] }
)
