import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startE2E } from './helper.js'

// It starts the services as processes: a budget of its own that fits a machine twice as slow as a loaded
// one of this kind (tap's default of 120 s per file does not).
t.setTimeout(300_000)

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'

// Swagger UI as a person sees it: headless Chromium renders /docs/ from the gateway and the page must
// list the merged operations of all three services. Needs Debian's chromium (`apt-get install chromium`).
t.test(
  'Swagger UI renders the merged API in a browser',
  { skip: !existsSync(CHROMIUM) && `no browser at ${CHROMIUM}` },
  async (t) => {
    const system = await startE2E(t, ['identity', 'directory', 'audit', 'gateway'])
    const profile = await mkdtemp(join(tmpdir(), 'roster-chromium-'))
    t.after(() => rm(profile, { recursive: true, force: true }))
    const { stdout } = await promisify(execFile)(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        `--user-data-dir=${profile}`,
        '--virtual-time-budget=8000',
        '--dump-dom',
        `${system.gatewayUrl}/docs/`
      ],
      { maxBuffer: 32 * 1024 * 1024, timeout: 60_000 }
    )
    t.match(stdout, /Roster API/)
    for (const path of [
      '/api/auth/',
      '/api/users/{pk}/',
      '/api/groups/{pk}/users/',
      '/api/occupations/',
      '/api/user-logs/',
      '/api/black-list/{pk}/'
    ]) {
      t.ok(stdout.includes(path), `the page lists ${path}`)
    }
  }
)
