import type { EventEnvelope } from '@roster/contracts'
import { eventually, isolate, serviceTestConfig, type TestIsolation } from '@roster/service-kit/testing'
import type { ServiceApp } from '@roster/service-kit'
import { buildApp } from '../src/app.js'
import { readConfig, type DirectoryConfig } from '../src/config.js'
import {
  buildApp as buildIdentity,
  ADMIN,
  bearer,
  login,
  register,
  testConfig as identityTestConfig
} from '@roster/identity/testing'

export { bearer } from '@roster/identity/testing'

interface TestLike {
  after(fn: () => unknown): void
}

export function testConfig(iso: TestIsolation, overrides: Partial<DirectoryConfig> = {}): DirectoryConfig {
  // Route tests start from an empty directory; the catalogue has its own test.
  return readConfig({ ...serviceTestConfig(iso, 'directory'), DIRECTORY_SEED_OCCUPATIONS: false, ...overrides })
}

export interface Caller {
  id: number
  access: string
  headers: { authorization: string }
}

export interface TestSystem {
  /** The directory under test. */
  app: ServiceApp
  /** A real identity service (listening), whose JWKS the directory verifies tokens with. */
  identity: ServiceApp
  iso: TestIsolation
  admin: Caller
  user: Caller
}

function userIdOf(access: string): number {
  return JSON.parse(Buffer.from(access.split('.')[1], 'base64url').toString()).user_id
}

async function caller(identity: ServiceApp, username: string, password: string): Promise<Caller> {
  const { access } = await login(identity, username, password)
  return { id: userIdOf(access), access, headers: bearer(access) }
}

/**
 * A ready directory on fresh schema and stream names, with a real identity service beside it on the
 * same isolation (so they share the NATS prefix), an admin and a normal user logged in; closed when the test ends.
 */
export async function build(t: TestLike, overrides: Partial<DirectoryConfig> = {}): Promise<TestSystem> {
  const iso = await isolate(t)
  const identity = await buildIdentity(identityTestConfig(iso))
  t.after(() => identity.close())
  const identityUrl = await identity.listen({ port: 0, host: '127.0.0.1' })
  const app = await buildApp(testConfig(iso, { IDENTITY_URL: identityUrl, ...overrides }))
  t.after(() => app.close())
  await app.ready()
  const registered = await register(identity)
  return {
    app,
    identity,
    iso,
    admin: await caller(identity, ADMIN.username, ADMIN.password),
    user: await caller(identity, registered.username, 'password1')
  }
}

/** Every event on this test's `DIRECTORY` stream, in stream order, read straight from JetStream. */
export async function streamEvents(app: ServiceApp): Promise<EventEnvelope[]> {
  const { jsm, names } = app.nats
  const stream = names.stream('DIRECTORY')
  const { state } = await jsm.streams.info(stream)
  const events: EventEnvelope[] = []
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq })
    if (m) events.push(m.json<EventEnvelope>())
  }
  return events
}

/** Waits until the stream holds at least `count` events whose subject starts with `prefix`, and returns them. */
export async function eventsOn(app: ServiceApp, prefix: string, count: number): Promise<EventEnvelope[]> {
  // The kit's `eventually` resolves only truthy values but is typed with `null` included.
  const events = await eventually(
    async () => {
      const events = (await streamEvents(app)).filter((e) => e.subject.startsWith(prefix))
      return events.length >= count ? events : null
    },
    { timeoutMs: 10000 }
  )
  return events!
}
