import { isolate } from '@roster/service-kit/testing'
import { listenInternal } from '@roster/service-kit'
import { buildApp as buildIdentity } from '../../services/identity/src/app.js'
import { testConfig as identityConfig } from '../../services/identity/test/helper.js'
import { buildApp as buildDirectory } from '../../services/directory/src/app.js'
import { testConfig as directoryConfig } from '../../services/directory/test/helper.js'
import { buildApp as buildAudit } from '../../services/audit/src/app.js'
import { testConfig as auditConfig } from '../../services/audit/test/helper.js'
import { buildApp } from '../src/app.js'
import { readConfig } from '../src/config.js'

/** The gateway's merged OpenAPI document, built from the three real services (each on its own database schema). */
export async function mergedDocument(t: { after(fn: () => unknown): void }): Promise<any> {
  const iso = await isolate(t)
  const identity = await buildIdentity(identityConfig(iso))
  t.after(() => identity.close())
  const directory = await buildDirectory(directoryConfig(iso))
  t.after(() => directory.close())
  const audit = await buildAudit(auditConfig(iso))
  t.after(() => audit.close())
  const internal = await Promise.all([identity, directory, audit].map((app) => listenInternal(app, { host: '127.0.0.1', port: 0 })))
  const gateway = await buildApp(
    readConfig({
      IDENTITY_URL: 'http://127.0.0.1:9',
      DIRECTORY_URL: 'http://127.0.0.1:9',
      AUDIT_URL: 'http://127.0.0.1:9',
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
  return res.json()
}
