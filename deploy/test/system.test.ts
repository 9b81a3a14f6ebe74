import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { findFreePort } from '../local/ports.js'
import { PortInUseError, REPO_ROOT, SERVICE_DIRS, ServiceStartError, startSystem, type ServiceName } from '../local/system.js'

// Stand-ins for the real services, with the same process contract: PORT/INTERNAL_PORT/HOST from the
// environment, /health on both ports and /ready on the internal one only, a graceful exit on SIGTERM.
// FAKE_MODE chooses a failure.
const FAKE_SERVER = `
import { createServer } from 'node:http';
const mode = process.env.FAKE_MODE ?? 'ok';
if (mode === 'crash') {
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

const quiet = { log: () => {}, inheritEnv: true } as const

t.test('starts the services that exist on free ports, wired together, and stops them', async (t) => {
  const rootDir = await fakeRepo(t, ['identity', 'audit', 'gateway'])
  const messages: string[] = []
  const system = await startSystem({
    rootDir,
    ports: { identity: 0, directory: 0, audit: 0, gateway: 0 },
    env: { DATABASE_URL: 'postgres://db/roster', NATS_URL: 'nats://127.0.0.1:1', NATS_PREFIX: 'T1_', SHOULD_BE_GONE: undefined },
    serviceEnv: { identity: { ROSTER_ADMIN_USERNAME: 'root' } },
    dbSchema: (service) => `test_${service}`,
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
  t.equal((await fetch(`${system.internalUrls.identity}/ready`)).status, 200, 'readiness was polled on the internal port')
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
    // Long enough for the child to start and answer 503 on a loaded machine (1.5 s was not).
    readyTimeoutMs: 10_000
  }).catch((e: unknown) => e)
  t.type(error, ServiceStartError)
  t.match(
    (error as Error).message,
    new RegExp(`directory was not ready within 10000 ms: http://127.0.0.1:${internalPort}/ready last answered 503`)
  )
  t.match((error as Error).message, /listening on/)
  t.equal(await fetch(`http://127.0.0.1:${port}/health`).catch(() => 'down'), 'down', 'the child was stopped')
})

t.test('a taken port fails before anything starts, or moves when fallback is allowed', async (t) => {
  const rootDir = await fakeRepo(t, ['gateway'])
  const port = await findFreePort()
  const blocker: Server = createServer()
  await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())))

  await t.rejects(startSystem({ ...quiet, rootDir, services: ['gateway'], ports: { gateway: port }, internalPorts: { gateway: 0 } }), PortInUseError)
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
