import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { isolate, eventually, serviceTestConfig, type TestIsolation } from '@roster/service-kit/testing'
import { listenInternal, type ServiceApp } from '@roster/service-kit'
import type { EventData, EventEnvelope, EventSubject } from '@roster/contracts'
import {
  buildApp as buildIdentity,
  ADMIN,
  bearer,
  login,
  register,
  testConfig as identityTestConfig
} from '@roster/identity/testing'
import { buildApp } from '../src/app.js'
import { readConfig, type AuditConfig } from '../src/config.js'

export { bearer }

interface TestLike {
  after(fn: () => unknown): void
}

export function testConfig(iso: TestIsolation, overrides: Partial<AuditConfig> = {}): AuditConfig {
  // No identity beside it unless the test names one: never whatever listens on the default internal port.
  return readConfig({ ...serviceTestConfig(iso, 'audit'), IDENTITY_INTERNAL_URL: 'http://127.0.0.1:9', ...overrides })
}

export interface Account {
  id: number
  username: string
  password: string
  access: string
}

export interface System {
  iso: TestIsolation
  /** A real identity service, listening, whose events and JWKS audit uses. */
  identity: ServiceApp
  identityUrl: string
  /** Identity's internal listener (read-through of unknown user ids). */
  identityInternalUrl: string
  audit: ServiceApp
  admin: Account
}

function userIdOf(token: string): number {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).user_id
}

/**
 * Identity (listening on a free port) and audit on one test isolation, so they share the NATS prefix:
 * audit verifies identity's tokens through its JWKS and consumes its events. Both close when the test ends.
 */
export async function buildSystem(t: TestLike, overrides: Partial<AuditConfig> = {}): Promise<System> {
  const iso = await isolate(t)
  const identity = await buildIdentity(identityTestConfig(iso))
  t.after(() => identity.close())
  await identity.listen({ port: 0, host: '127.0.0.1' })
  const identityUrl = `http://127.0.0.1:${(identity.server.address() as AddressInfo).port}`
  const identityInternalUrl = await listenInternal(identity, { port: 0, host: '127.0.0.1' })
  const audit = await buildApp(
    testConfig(iso, { IDENTITY_URL: identityUrl, IDENTITY_INTERNAL_URL: identityInternalUrl, ...overrides })
  )
  t.after(() => audit.close())
  await audit.ready()
  const tokens = await login(identity, ADMIN.username, ADMIN.password)
  const admin = {
    id: userIdOf(tokens.access),
    username: ADMIN.username,
    password: ADMIN.password,
    access: tokens.access
  }
  return { iso, identity, identityUrl, identityInternalUrl, audit, admin }
}

/**
 * Registers a user through identity and waits until audit knows it; logs it in unless told not to
 * (then `access` is empty and the user has no log rows).
 */
export async function newUser(sys: System, options: { login?: boolean } = {}): Promise<Account> {
  const password = 'password1'
  const user = await register(sys.identity, { password })
  const access = options.login === false ? '' : (await login(sys.identity, user.username, password)).access
  await eventually(async () => (await sql(sys.audit, 'select 1 from known_user where id = ?', [user.id])).length === 1)
  return { id: user.id, username: user.username, password, access }
}

/** Runs SQL in audit's own schema. */
export function sql<T = any>(app: ServiceApp, query: string, params: unknown[] = []): Promise<T[]> {
  return app.orm.em.fork().getConnection().execute<T[]>(query, params)
}

export function envelope<S extends EventSubject>(
  subject: S,
  data: EventData<S>,
  occurredAt = new Date()
): EventEnvelope<S> {
  return { id: randomUUID(), subject, occurred_at: occurredAt.toISOString(), data }
}

/** Publishes straight onto the (prefixed) JetStream subject, as identity's outbox relay would. */
export async function publish(
  app: ServiceApp,
  subject: EventSubject | string,
  body: unknown,
  msgID?: string
): Promise<{ duplicate: boolean }> {
  const payload = typeof body === 'string' ? body : JSON.stringify(body)
  return app.nats.js.publish(app.nats.names.subject(subject), payload, msgID ? { msgID } : undefined)
}

/** The log rows audit wrote for an event id. */
export async function rowsOfEvent(app: ServiceApp, eventId: string): Promise<number> {
  const [row] = await sql<{ n: string }>(app, 'select count(*) as n from user_log where event_id = ?', [eventId])
  return Number(row.n)
}

export const get = (app: ServiceApp, url: string, token?: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'GET', url, headers: { ...(token ? bearer(token) : {}), ...headers } })
