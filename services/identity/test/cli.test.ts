import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { eventually, isolate } from '@roster/service-kit/testing'
import { buildApp } from '../src/app.js'
import { testConfig, testKey, login } from './helper.js'

const run = promisify(execFile)
const cli = fileURLToPath(new URL('../src/cli/create-admin.ts', import.meta.url))

t.test('the create-admin command makes an admin who can log in', async (t) => {
  const iso = await isolate(t)
  const env = {
    ...process.env,
    DATABASE_URL: iso.DATABASE_URL,
    DB_SCHEMA: iso.schema('identity'),
    NATS_URL: iso.NATS_URL,
    NATS_PREFIX: iso.NATS_PREFIX,
    ROSTER_JWT_PRIVATE_KEY: testKey,
    BCRYPT_COST: '4'
  }
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', cli, '--username', 'root2', '--password', 'root-pass-123'],
    { env }
  )
  t.match(stdout, /created admin "root2"/)
  const again = await run(
    process.execPath,
    ['--import', 'tsx', cli, '--username', 'root2', '--password', 'root-pass-456'],
    { env }
  )
  t.match(again.stdout, /updated admin "root2"/)
  const usage = await run(process.execPath, ['--import', 'tsx', cli], { env }).catch((e) => e)
  t.equal(usage.code, 2)

  const app = await buildApp(testConfig(iso, { ROSTER_ADMIN_USERNAME: '', ROSTER_ADMIN_PASSWORD: '' }))
  t.after(() => app.close())
  await app.ready()
  const tokens = await login(app, 'root2', 'root-pass-456')
  const list = await app.inject({
    method: 'GET',
    url: '/api/users/',
    headers: { authorization: `Bearer ${tokens.access}` }
  })
  t.equal(list.statusCode, 200)

  // A reset password ends the sessions of the account, in every process (this one learns it from the bucket).
  await run(process.execPath, ['--import', 'tsx', cli, '--username', 'root2', '--password', 'root-pass-789'], { env })
  await eventually(
    async () =>
      (await app.inject({ method: 'GET', url: '/api/users/', headers: { authorization: `Bearer ${tokens.access}` } }))
        .statusCode === 401
  )
  const refreshed = await app.inject({
    method: 'POST',
    url: '/api/auth/refresh/',
    payload: { refresh: tokens.refresh }
  })
  t.equal(refreshed.statusCode, 401)
})

t.test('start-up fails loudly on bad configuration', async (t) => {
  const { readConfig } = await import('../src/config.js')
  t.throws(() => readConfig({ PORT: 'x' as any }), /PORT/)
  t.throws(() => readConfig({ BCRYPT_COST: 99 }), /BCRYPT_COST/)
  const iso = await isolate(t)
  await t.rejects(buildApp(testConfig(iso, { ROSTER_TIME_ZONE: 'Mars/Olympus' })), RangeError)
  await t.rejects(buildApp(testConfig(iso, { ROSTER_JWT_PRIVATE_KEY: 'not a pem' })))
})
