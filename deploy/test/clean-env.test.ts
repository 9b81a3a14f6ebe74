import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { isConfiguration } from './clean-env.js'
import { REPO_ROOT } from '../local/system.js'

const run = promisify(execFile)

t.test("Roster's configuration variables are recognised; the test switches and the rest are not", async (t) => {
  const configuration = ['ROSTER_ADMIN_USERNAME', 'ROSTER_ADMIN_PASSWORD', 'DATABASE_URL', 'NATS_URL', 'DB_SCHEMA']
  const more = [
    'LOG_LEVEL',
    'PORT',
    'GATEWAY_PORT',
    'INTERNAL_PORT',
    'IDENTITY_URL',
    'LOGIN_MAX_FAILURES',
    'BCRYPT_COST'
  ]
  for (const name of [...configuration, ...more]) t.ok(isConfiguration(name), name)
  for (const name of [
    'TEST_DATABASE_URL',
    'TEST_NATS_URL',
    'TEST_LOG_LEVEL',
    'KEEP_TEST_DATA',
    'PATH',
    'HOME',
    'TAP'
  ]) {
    t.notOk(isConfiguration(name), name)
  }
})

t.test('a process started with the preload does not see the shell configuration', async (t) => {
  const shell = {
    ...process.env,
    ROSTER_ADMIN_USERNAME: 'from-the-shell',
    DATABASE_URL: 'postgres://nowhere/shell',
    LOG_LEVEL: 'trace',
    PORT: '1',
    TEST_LOG_LEVEL: 'kept'
  }
  const script = 'console.log(JSON.stringify(process.env))'
  const args = ['--import', 'tsx', '--import', './deploy/test/clean-env.ts', '--input-type=module', '-e', script]
  const { stdout } = await run(process.execPath, args, { cwd: REPO_ROOT, env: shell })
  const seen = JSON.parse(stdout) as Record<string, string | undefined>
  t.match(seen, { ROSTER_ADMIN_USERNAME: undefined, DATABASE_URL: undefined, LOG_LEVEL: undefined, PORT: undefined })
  t.equal(seen.TEST_LOG_LEVEL, 'kept')
  t.equal(seen.PATH, process.env.PATH)
})

t.test('tap loads the preload into every test file, and this one runs with it', async (t) => {
  const taprc = await readFile(join(REPO_ROOT, '.taprc'), 'utf8')
  t.match(taprc, /--import=\.\/deploy\/test\/clean-env\.ts/)
  t.notOk(
    Object.keys(process.env).some(isConfiguration),
    'no configuration variable in this test process, whatever the shell held'
  )
})
