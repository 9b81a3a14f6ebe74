import { generateKeyPairSync, randomUUID } from 'node:crypto'
import { streamOfSubject, type EventSubject } from '@roster/contracts'
import { isolate, serviceTestConfig, type TestIsolation } from '@roster/service-kit/testing'
import type { ServiceApp } from '@roster/service-kit'
import { buildApp } from '../src/app.js'
import { readConfig, type IdentityConfig } from '../src/config.js'

interface TestLike {
  after(fn: () => unknown): void
}

export const ADMIN = { username: 'admin', password: 'admin-pass-123' }
export const testKey = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()

export function testConfig(iso: TestIsolation, overrides: Partial<IdentityConfig> = {}): IdentityConfig {
  return readConfig({
    ...serviceTestConfig(iso, 'identity'),
    BCRYPT_COST: 4,
    ROSTER_JWT_PRIVATE_KEY: testKey,
    ROSTER_ADMIN_USERNAME: ADMIN.username,
    ROSTER_ADMIN_PASSWORD: ADMIN.password,
    // No directory beside it unless a test starts one: a replica miss is a 404, not a read-through.
    DIRECTORY_INTERNAL_URL: '',
    ...overrides
  })
}

/** A ready identity app on fresh schema and stream names, closed when the test ends. */
export async function build(
  t: TestLike,
  overrides: Partial<IdentityConfig> = {}
): Promise<ServiceApp & { iso: TestIsolation }> {
  const iso = await isolate(t)
  const app = await buildApp(testConfig(iso, overrides))
  t.after(() => app.close())
  await app.ready()
  return Object.assign(app, { iso })
}

export async function login(app: ServiceApp, username: string, password: string) {
  const res = await app.inject({ method: 'POST', url: '/api/auth/', payload: { username, password } })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  return res.json() as { access: string; refresh: string }
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

export const SEED_PROFILE = {
  gender: 0,
  age: 18,
  name: 'name',
  identify_id: '100000190001010001',
  phone: '18888888888',
  address: 'address1'
}

let counter = 0
export async function register(app: ServiceApp, body: Record<string, unknown> = {}) {
  counter++
  const res = await app.inject({
    method: 'POST',
    url: '/api/users/',
    payload: { username: `user${counter}_${Date.now() % 100000}`, password: 'password1', ...body }
  })
  if (res.statusCode !== 200) throw new Error(`register failed: ${res.statusCode} ${res.body}`)
  return res.json() as { id: number; username: string; [k: string]: unknown }
}

/** Publishes an event on JetStream as its producer would (the stream must exist: a consumer creates it). */
export async function publishEvent(app: ServiceApp, subject: EventSubject, data: unknown, id: string = randomUUID()) {
  const stream = streamOfSubject(subject)
  await app.nats.ensureStream(stream)
  const envelope = { id, subject, occurred_at: new Date().toISOString(), data }
  await app.nats.js.publish(app.nats.names.subject(subject), JSON.stringify(envelope))
  return id
}
