import type { JetStreamManager } from '@nats-io/jetstream'
import type { EventEnvelope, StreamKey } from '@roster/contracts'
import type { EntityManager } from '@mikro-orm/postgresql'
import {
  BaseConfigSchema,
  buildService,
  loadConfig,
  sql,
  type BaseConfig,
  type ServiceApp,
  type ServiceDefinition
} from '../src/index.js'
import { serviceTestConfig, type TestIsolation } from '../src/testing/index.js'

interface TestLike {
  after(fn: () => unknown): void
}

/**
 * A small service built with the kit (every kit plugin, on the isolation's PostgreSQL schema and NATS
 * names), ready, and closed when the test ends. Its configuration never reads the caller's environment.
 */
export async function kitApp(
  t: TestLike,
  iso: TestIsolation,
  def: Partial<ServiceDefinition> & { name: string },
  overrides: Partial<BaseConfig> = {}
): Promise<ServiceApp> {
  const config = loadConfig(BaseConfigSchema, { ...serviceTestConfig(iso, def.name), ...overrides }, {})
  const base = { description: 'a kit test service', entities: [], migrations: [], routes: [] }
  const app = await buildService({ ...base, config, ...def })
  t.after(() => app.close())
  await app.ready()
  return app
}

/** Every message of a stream, in stream order, as event envelopes. */
export async function streamEvents(jsm: JetStreamManager, stream: string): Promise<EventEnvelope[]> {
  const { state } = await jsm.streams.info(stream)
  const events: EventEnvelope[] = []
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const message = await jsm.streams.getMessage(stream, { seq })
    if (message) events.push(message.json<EventEnvelope>())
  }
  return events
}

export const streamName = (app: ServiceApp, key: StreamKey) => app.nats.names.stream(key)

/** Rows of a raw query in the app's schema. */
export function rows<T>(app: ServiceApp, text: string, params: unknown[] = []): Promise<T[]> {
  return sql<T>(app.orm.em.fork() as EntityManager, text, params)
}
