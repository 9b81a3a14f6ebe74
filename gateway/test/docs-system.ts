import { isolate } from '@roster/service-kit/testing'
import { listenInternal } from '@roster/service-kit'
import { buildApp as buildIdentity, testConfig as identityConfig } from '@roster/identity/testing'
import { buildApp as buildDirectory, testConfig as directoryConfig } from '@roster/directory/testing'
import { buildApp as buildAudit, testConfig as auditConfig } from '@roster/audit/testing'
import { buildApp } from '../src/app.js'
import { readConfig } from '../src/config.js'

/**
 * The gateway in front of the three real services (each on its own database schema), and its merged
 * OpenAPI document. `downstream: false` points the public upstreams at a closed port (the docs still merge).
 */
export async function docsSystem(t: { after(fn: () => unknown): void }, options: { downstream?: boolean } = {}) {
  const iso = await isolate(t)
  const identity = await buildIdentity(identityConfig(iso))
  t.after(() => identity.close())
  const directory = await buildDirectory(directoryConfig(iso))
  t.after(() => directory.close())
  const audit = await buildAudit(auditConfig(iso))
  t.after(() => audit.close())
  const internal = await Promise.all(
    [identity, directory, audit].map((app) => listenInternal(app, { host: '127.0.0.1', port: 0 }))
  )
  const closed = 'http://127.0.0.1:9'
  const published =
    options.downstream === false
      ? [closed, closed, closed]
      : await Promise.all([identity, directory, audit].map((app) => app.listen({ host: '127.0.0.1', port: 0 })))
  const gateway = await buildApp(
    readConfig({
      IDENTITY_URL: published[0],
      DIRECTORY_URL: published[1],
      AUDIT_URL: published[2],
      IDENTITY_INTERNAL_URL: internal[0],
      DIRECTORY_INTERNAL_URL: internal[1],
      AUDIT_INTERNAL_URL: internal[2],
      NATS_URL: iso.NATS_URL,
      NATS_PREFIX: iso.NATS_PREFIX,
      LOG_LEVEL: 'silent'
    })
  )
  t.after(() => gateway.close())
  await gateway.ready()
  const res = await gateway.inject({ method: 'GET', url: '/docs/json' })
  if (res.statusCode !== 200) throw new Error(`/docs/json answered ${res.statusCode}`)
  return { gateway, doc: res.json() }
}
