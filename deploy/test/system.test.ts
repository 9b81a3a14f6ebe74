import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { findFreePort } from '../local/ports.js'
import { eventually } from '@roster/service-kit/testing'
import {
  PortInUseError,
  prettyLines,
  REPO_ROOT,
  restartDelay,
  SERVICE_DIRS,
  ServiceStartError,
  startSystem,
  type ServiceName
} from '../local/system.js'

// Stand-ins for the real services, with the same process contract: PORT/INTERNAL_PORT/HOST from the
// environment, /health on both ports and /ready on the internal one only, a graceful exit on SIGTERM.
// FAKE_MODE chooses a failure.
const FAKE_SERVER = `
import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
const mode = process.env.FAKE_MODE ?? 'ok';
if (mode === 'crash' || (process.env.FAKE_CRASH_FILE && existsSync(process.env.FAKE_CRASH_FILE))) {
  console.error('cannot connect to the database at ' + process.env.DATABASE_URL);
  process.exitCode = 3;
} else {
  const server = createServer((request, response) => {
    if (request.url === '/env') {
      const names = ['DATABASE_URL', 'NATS_URL', 'NATS_PREFIX', 'DB_SCHEMA', 'HOST', 'PORT', 'INTERNAL_PORT', 'IDENTITY_URL', 'DIRECTORY_URL', 'AUDIT_URL', 'IDENTITY_INTERNAL_URL', 'DIRECTORY_INTERNAL_URL', 'AUDIT_INTERNAL_URL', 'ROSTER_ADMIN_USERNAME', 'SHOULD_BE_GONE'];
      response.end(JSON.stringify(Object.fromEntries(names.map((name) => [name, process.env[name]]))));
      return;
    }
    response.statusCode = request.url === '/ready' && mode === 'never-ready' ? 503 : 200;
    response.end('{}');
  });
  const internal = createServer((request, response) => {
    if (request.url === '/ready' || request.url === '/health') server.emit('request', request, response);
    else response.writeHead(404).end('{}');
  });
  const outside = createServer((request, response) => {
    if (request.url === '/ready') response.writeHead(404).end('{}');
    else server.emit('request', request, response);
  });
  outside.listen(Number(process.env.PORT), process.env.HOST, () => console.log('listening on ' + process.env.PORT));
  internal.listen(Number(process.env.INTERNAL_PORT), process.env.HOST, () => console.log('internal on ' + process.env.INTERNAL_PORT));
  process.on('SIGTERM', () => { outside.close(); internal.close(); });
}
`

async function fakeRepo(t: Test, services: readonly ServiceName[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'roster-system-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  // `node --import tsx` resolves tsx from the working directory.
  await symlink(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'))
  for (const service of services) {
    const src = join(root, SERVICE_DIRS[service], 'src')
    await mkdir(src, { recursive: true })
    await writeFile(join(src, 'server.ts'), FAKE_SERVER)
  }
  return root
}

async function getJson(url: string): Promise<Record<string, string | undefined>> {
  return (await (await fetch(url)).json()) as Record<string, string | undefined>
}

// Generous: the stand-ins start through tsx, which on a loaded machine takes seconds each.
const quiet = { log: () => {}, inheritEnv: true, readyTimeoutMs: 120_000 } as const

// Each test starts and stops processes: a budget for a machine twice as slow as a loaded one of this kind.
t.setTimeout(300_000)

t.test('starts the services that exist on free ports, wired together, and stops them', async (t) => {
  const rootDir = await fakeRepo(t, ['identity', 'audit', 'gateway'])
  const messages: string[] = []
  const system = await startSystem({
    rootDir,
    ports: { identity: 0, directory: 0, audit: 0, gateway: 0 },
    // `undefined` removes a variable the caller's shell may have (a README reader has ROSTER_ADMIN_USERNAME set).
    env: {
      DATABASE_URL: 'postgres://db/roster',
      NATS_URL: 'nats://127.0.0.1:1',
      NATS_PREFIX: 'T1_',
      SHOULD_BE_GONE: undefined,
      ROSTER_ADMIN_USERNAME: undefined
    },
    serviceEnv: { identity: { ROSTER_ADMIN_USERNAME: 'root' } },
    dbSchema: (service) => `test_${service}`,
    readyTimeoutMs: 120_000,
    log: (message) => messages.push(message)
  })
  t.teardown(system.stop)

  t.same(system.services, ['identity', 'audit', 'gateway'])
  t.same(system.skipped, ['directory'])
  t.match(messages.join('\n'), /skipping directory: services\/directory\/src\/server\.ts does not exist/)
  t.equal(system.gatewayUrl, system.urls.gateway)
  t.notOk(system.urls.directory)
  t.notOk(system.internalUrls.directory)
  const allUrls = [...Object.values(system.urls), ...Object.values(system.internalUrls)]
  t.equal(new Set(allUrls).size, 6, 'every listener of every process has a port of its own')

  const identity = await getJson(`${system.urls.identity}/env`)
  t.match(identity, {
    DATABASE_URL: 'postgres://db/roster',
    NATS_URL: 'nats://127.0.0.1:1',
    NATS_PREFIX: 'T1_',
    DB_SCHEMA: 'test_identity',
    HOST: '127.0.0.1',
    IDENTITY_URL: system.urls.identity,
    AUDIT_URL: system.urls.audit,
    DIRECTORY_URL: 'http://127.0.0.1:3002',
    INTERNAL_PORT: new URL(system.internalUrls.identity!).port,
    IDENTITY_INTERNAL_URL: system.internalUrls.identity,
    AUDIT_INTERNAL_URL: system.internalUrls.audit,
    DIRECTORY_INTERNAL_URL: 'http://127.0.0.1:3102',
    ROSTER_ADMIN_USERNAME: 'root'
  })
  t.equal((await fetch(`${system.urls.identity}/ready`)).status, 404, 'the fake, as a service, keeps /ready internal')
  t.equal(
    (await fetch(`${system.internalUrls.identity}/ready`)).status,
    200,
    'readiness was polled on the internal port'
  )
  t.equal(identity.SHOULD_BE_GONE, undefined)
  t.match(await getJson(`${system.urls.audit}/env`), { DB_SCHEMA: 'test_audit', ROSTER_ADMIN_USERNAME: undefined })
  const gateway = await getJson(`${system.gatewayUrl}/env`)
  t.match(gateway, {
    IDENTITY_URL: system.urls.identity,
    AUDIT_URL: system.urls.audit,
    IDENTITY_INTERNAL_URL: system.internalUrls.identity,
    AUDIT_INTERNAL_URL: system.internalUrls.audit,
    DB_SCHEMA: undefined
  })
  t.match(system.output('identity').join('\n'), /listening on/)

  await system.stop()
  t.notOk(system.isRunning('identity'))
  await t.rejects(fetch(`${system.gatewayUrl}/health`), 'the gateway is gone')
})

t.test('stopService and startService take one service down and bring it back on the same URL', async (t) => {
  const rootDir = await fakeRepo(t, ['identity', 'audit'])
  const exits: string[] = []
  const system = await startSystem({
    ...quiet,
    rootDir,
    services: ['identity', 'audit'],
    ports: { identity: 0, audit: 0 },
    onExit: (service) => exits.push(service)
  })
  t.teardown(system.stop)
  const auditUrl = system.urls.audit
  const auditInternalUrl = system.internalUrls.audit

  await system.stopService('audit', { signal: 'SIGKILL' })
  t.notOk(system.isRunning('audit'))
  t.ok(system.isRunning('identity'))
  await t.rejects(fetch(`${auditUrl}/health`))
  t.same(exits, [], 'a requested stop is not reported as an unexpected exit')

  await system.startService('audit')
  t.equal((await fetch(`${auditUrl}/health`)).status, 200, 'back on the same URL')
  t.equal((await fetch(`${auditInternalUrl}/ready`)).status, 200, 'ready again on the same internal URL')
  await t.rejects(system.startService('audit'), /already running/)
  await t.rejects(system.startService('gateway'), /not part of this system/)
})

t.test('a service that exits during start-up fails with its stderr and leaves nothing running', async (t) => {
  const rootDir = await fakeRepo(t, ['identity', 'audit'])
  const identityPort = await findFreePort()
  const error = await startSystem({
    ...quiet,
    rootDir,
    services: ['identity', 'audit'],
    ports: { identity: identityPort, audit: 0 },
    internalPorts: { identity: 0 },
    env: { DATABASE_URL: 'postgres://nowhere/roster' },
    serviceEnv: { audit: { FAKE_MODE: 'crash' } }
  }).catch((e: unknown) => e)
  t.type(error, ServiceStartError)
  t.match((error as ServiceStartError).message, /audit exited with code 3/)
  t.match((error as ServiceStartError).message, /cannot connect to the database at postgres:\/\/nowhere\/roster/)
  t.equal(
    await fetch(`http://127.0.0.1:${identityPort}/health`).catch(() => 'down'),
    'down',
    'identity, which did start, was stopped'
  )
})

t.test('a service never ready times out with a clear error', async (t) => {
  // Long enough for the stand-in to be listening (and answering 503) on a loaded machine.
  const rootDir = await fakeRepo(t, ['directory'])
  const port = await findFreePort()
  let internalPort = await findFreePort()
  while (internalPort === port) internalPort = await findFreePort()
  const error = await startSystem({
    ...quiet,
    rootDir,
    services: ['directory'],
    ports: { directory: port },
    internalPorts: { directory: internalPort },
    serviceEnv: { directory: { FAKE_MODE: 'never-ready' } },
    readyTimeoutMs: 10_000
  }).catch((e: unknown) => e)
  t.type(error, ServiceStartError)
  // Whichever timing wins: on a loaded machine the child may not be listening yet when the 10 s are up
  // (refused, or a poll that timed out); once it listens it answers 503, and its output says it listened.
  const message = (error as Error).message
  const head = `directory was not ready within 10000 ms: http://127.0.0.1:${internalPort}/ready last`
  t.match(message, new RegExp(`${head} (answered 503|failed \\(.+\\))\\.`))
  if (message.includes('last answered 503')) t.match(message, /listening on/)
  t.equal(await fetch(`http://127.0.0.1:${port}/health`).catch(() => 'down'), 'down', 'the child was stopped')
})

t.test('a taken port fails before anything starts, or moves when fallback is allowed', async (t) => {
  const rootDir = await fakeRepo(t, ['gateway'])
  const port = await findFreePort()
  const blocker: Server = createServer()
  await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())))

  await t.rejects(
    startSystem({ ...quiet, rootDir, services: ['gateway'], ports: { gateway: port }, internalPorts: { gateway: 0 } }),
    PortInUseError
  )
  const messages: string[] = []
  const system = await startSystem({
    ...quiet,
    log: (message) => messages.push(message),
    rootDir,
    services: ['gateway'],
    ports: { gateway: port },
    // A taken internal port always moves: nothing outside the machine needs it.
    internalPorts: { gateway: port },
    portFallback: ['gateway']
  })
  t.teardown(system.stop)
  t.not(system.gatewayUrl, `http://127.0.0.1:${port}`)
  t.not(system.internalUrls.gateway, `http://127.0.0.1:${port}`)
  t.match(messages.join('\n'), new RegExp(`gateway: internal port ${port} is taken, using`))
  t.equal((await fetch(`${system.internalUrls.gateway}/ready`)).status, 200)
})

t.test('restart delays double from the initial delay up to the cap', async (t) => {
  const policy = { initialDelayMs: 500, maxDelayMs: 30_000, resetAfterMs: 60_000 }
  t.same(
    [1, 2, 3, 4, 5, 6, 7, 8, 20].map((attempt) => restartDelay(attempt, policy)),
    [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
  )
})

t.test('supervision: a child that dies is restarted with a doubling delay, and the log says so', async (t) => {
  const rootDir = await fakeRepo(t, ['identity', 'audit'])
  const crashFile = join(rootDir, 'crash-on-start')
  const messages: string[] = []
  const system = await startSystem({
    ...quiet,
    rootDir,
    services: ['identity', 'audit'],
    ports: { identity: 0, audit: 0 },
    serviceEnv: { audit: { FAKE_CRASH_FILE: crashFile } },
    restart: { initialDelayMs: 100, maxDelayMs: 400, resetAfterMs: 60_000 },
    log: (message) => messages.push(message)
  })
  t.teardown(system.stop)
  const auditUrl = system.urls.audit!
  const firstPid = system.pid('audit')!

  // Killed from outside: restarted after the initial delay, on the same URL, and the log says which, how and when.
  process.kill(firstPid, 'SIGKILL')
  await eventually(async () => messages.some((m) => m === `audit is serving again on ${auditUrl}`), {
    timeoutMs: 30_000,
    intervalMs: 50
  })
  t.match(
    messages.join('\n'),
    new RegExp(
      `audit \\(pid ${firstPid}\\) exited unexpectedly \\(signal SIGKILL\\); restarting in 100 ms \\(restart 1 in a row\\)`
    )
  )
  t.match(messages.join('\n'), /audit restarted \(pid \d+\)/)
  t.not(system.pid('audit'), firstPid, 'a new process')
  t.equal((await fetch(`${auditUrl}/health`)).status, 200, 'serving again on the same URL')
  t.ok(system.isRunning('identity'), 'the others were left alone')

  // A crash loop (exits at start-up while the file exists): each delay doubles, up to the cap.
  await writeFile(crashFile, '')
  process.kill(system.pid('audit')!, 'SIGKILL')
  await eventually(async () => messages.some((m) => /code 3\); restarting in 400 ms \(restart 5 in a row\)/.test(m)), {
    timeoutMs: 60_000,
    intervalMs: 50
  }).catch((error: Error) => Promise.reject(new Error(`${error.message}; the launcher said:\n${messages.join('\n')}`)))
  const delays = messages
    .flatMap((m) => /^audit \(pid \d+\) exited unexpectedly .*restarting in (\d+) ms/.exec(m)?.[1] ?? [])
    .map(Number)
  t.same(delays.slice(0, 5), [100, 200, 400, 400, 400], 'doubling, capped')
  await rm(crashFile)
  await eventually(async () => (await fetch(`${auditUrl}/health`).catch(() => undefined))?.status === 200, {
    timeoutMs: 30_000,
    intervalMs: 100
  })
  t.pass('back once it can start again')
})

t.test('supervision: a stop cancels a pending restart', async (t) => {
  const rootDir = await fakeRepo(t, ['audit'])
  const messages: string[] = []
  const system = await startSystem({
    ...quiet,
    rootDir,
    services: ['audit'],
    ports: { audit: 0 },
    restart: { initialDelayMs: 600_000, maxDelayMs: 600_000 },
    log: (message) => messages.push(message)
  })
  t.teardown(system.stop)
  process.kill(system.pid('audit')!, 'SIGKILL')
  await eventually(async () => messages.some((m) => /restarting in 600000 ms/.test(m)), {
    timeoutMs: 30_000,
    intervalMs: 50
  })
  await system.stop()
  t.notOk(system.isRunning('audit'))
  // The pending timer is cleared: were it not, this file would not end for ten minutes (tap's timeout).
})

const EXIT_WITH_PARENT = pathToFileURL(join(REPO_ROOT, 'deploy/local/exit-with-launcher.mjs')).href

/** Gone, or a zombie waiting to be reaped by whoever inherited it: not running either way. */
async function processGone(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  return stat === undefined || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
}

t.test('services started by a launcher that is killed (SIGKILL) stop themselves: no orphans', async (t) => {
  const rootDir = await fakeRepo(t, ['identity', 'audit'])
  const launcher = join(rootDir, 'launcher.mts')
  await writeFile(
    launcher,
    `import { startSystem } from ${JSON.stringify(join(REPO_ROOT, 'deploy/local/system.ts'))}
const system = await startSystem({ rootDir: ${JSON.stringify(rootDir)}, services: ['identity', 'audit'], ports: { identity: 0, audit: 0 }, restart: true, log: () => {} })
console.log(JSON.stringify({ pids: [system.pid('identity'), system.pid('audit')], urls: [system.urls.identity, system.urls.audit] }))
setInterval(() => {}, 60_000)
`
  )
  // The launcher, too, stops with this test file (were it killed by tap's timeout): the same preload, over IPC.
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', EXIT_WITH_PARENT, launcher], {
    cwd: rootDir,
    stdio: ['ignore', 'pipe', 'inherit', 'ipc']
  })
  t.teardown(() => child.kill('SIGKILL'))
  const started = await new Promise<{ pids: number[]; urls: string[] }>((resolve, reject) => {
    let text = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      if (text.includes('\n')) resolve(JSON.parse(text.split('\n')[0]!))
    })
    child.once('exit', (code) => reject(new Error(`the launcher exited with ${code} before starting`)))
  })
  for (const url of started.urls) t.equal((await fetch(`${url}/health`)).status, 200, `${url} serves`)

  child.kill('SIGKILL')
  for (const [i, pid] of started.pids.entries()) {
    await eventually(async () => await processGone(pid), { timeoutMs: 30_000, intervalMs: 100 })
    t.pass(`service ${pid} stopped after its launcher was killed`)
    await t.rejects(fetch(`${started.urls[i]}/health`), `${started.urls[i]} no longer answers`)
  }
})

t.test('pino JSON lines are made human-readable for a terminal; other lines pass as they are', async (t) => {
  const pretty = prettyLines(false)
  const line = pretty(
    JSON.stringify({
      level: 50,
      time: Date.UTC(2026, 10, 30, 12, 0, 0),
      service: 'identity',
      msg: 'database went away',
      reqId: 'r-1'
    })
  )
  t.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] ERROR: database went away/)
  t.match(line, /reqId: "r-1"/)
  t.notMatch(line, /"level"/, 'no raw JSON left')
  t.equal(pretty('    at Object.<anonymous> (server.ts:1:1)'), '    at Object.<anonymous> (server.ts:1:1)')
  t.equal(pretty('{not json'), '{not json')
})
