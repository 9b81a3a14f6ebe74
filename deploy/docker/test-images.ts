// pnpm test:images — builds the four images with podman and runs them as the Kubernetes manifests say:
// the environment of deploy/k8s/base (ConfigMap + each container's env, Secrets filled in here), read-only
// root filesystem, every capability dropped, non-root, /tmp an in-memory volume. Against the machine's
// PostgreSQL and NATS (a fresh database and NATS prefix, removed afterwards) it runs each migration Job's
// command once, starts the services and the gateway, waits for /ready, and walks register → login →
// self → audit log through the gateway. Outside `pnpm test`: it needs podman and takes minutes.
//
//   ROSTER_BASE_IMAGE=localhost/roster-node-base:20 pnpm test:images     (see deploy/README.md)
//
// ROSTER_BASE_IMAGE   base of both stages (default docker.io/library/node:20-slim)
// ROSTER_IMAGES_SKIP_BUILD=1   reuse the images of an earlier run
// TEST_DATABASE_URL / TEST_NATS_URL   as for the other tests (any database name: a fresh one is made beside it)
import { execFile, spawn } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { parseAllDocuments } from 'yaml'
import { dropNatsPrefix } from '@roster/service-kit/testing'
import { REPO_ROOT } from '../local/system.js'

type Doc = Record<string, any>
const SERVICES = ['identity', 'directory', 'audit', 'gateway'] as const
type Service = (typeof SERVICES)[number]

const run = promisify(execFile)
const BASE_IMAGE = process.env.ROSTER_BASE_IMAGE || 'docker.io/library/node:20-slim'
const DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/roster_test'
const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222'
const SKIP_BUILD = process.env.ROSTER_IMAGES_SKIP_BUILD === '1'
// crun cannot set these limits in this kind of sandbox; runc with explicit values can.
const RUNTIME = ['--runtime', 'runc', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=4096:4096']
const image = (service: Service) => `localhost/roster/${service}:images-test`

const id = randomBytes(4).toString('hex')
const database = `roster_images_${id}`
const prefix = `IMG${id}`
const containers: string[] = []
const figures: string[] = []
let failures = 0

function log(line: string) {
  console.log(`[test:images] ${line}`)
}

function check(ok: boolean, what: string): void {
  log(`${ok ? 'ok' : 'NOT OK'} - ${what}`)
  if (!ok) failures++
}

async function podman(args: string[], options: { quiet?: boolean } = {}): Promise<string> {
  const { stdout } = await run('podman', args, { maxBuffer: 64 * 1024 * 1024 }).catch((error) => {
    if (!options.quiet) console.error(error.stderr || error.message)
    throw error
  })
  return stdout.trim()
}

/** Streams a long command's output to a log line per line prefix, resolves with its exit code. */
function stream(command: string, args: string[], label: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    const forward = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) console.log(`  ${label}| ${line}`)
    }
    child.stdout.on('data', forward)
    child.stderr.on('data', forward)
    child.on('close', (code) => resolve(code ?? 1))
  })
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function withDatabase(url: string, name: string): string {
  const target = new URL(url)
  target.pathname = `/${name}`
  return target.toString()
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: withDatabase(DATABASE_URL, 'postgres') })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

// ------------------------------------------------------------------ what the manifests say

async function manifests(): Promise<Doc[]> {
  const { stdout } = await run('kubectl', ['kustomize', join(REPO_ROOT, 'deploy/k8s/base')], {
    maxBuffer: 16 * 1024 * 1024
  })
  return parseAllDocuments(stdout).map((document) => document.toJS() as Doc)
}

interface Secrets {
  database: string
  adminUsername: string
  adminPassword: string
}

/** The container's environment as Kubernetes would give it: envFrom ConfigMaps, then env (Secrets resolved). */
function environment(docs: Doc[], container: Doc, secrets: Secrets, service: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const source of container.envFrom ?? []) {
    const configMap = docs.find((doc) => doc.kind === 'ConfigMap' && doc.metadata.name === source.configMapRef?.name)
    if (configMap === undefined)
      throw new Error(`${service}: ConfigMap ${source.configMapRef?.name} not in the manifests`)
    Object.assign(env, configMap.data)
  }
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) env[variable.name] = String(variable.value)
    const ref = variable.valueFrom?.secretKeyRef
    if (ref === undefined) continue
    const value =
      ref.name === 'roster-database'
        ? secrets.database
        : ref.name === 'roster-admin'
          ? { username: secrets.adminUsername, password: secrets.adminPassword }[ref.key as 'username' | 'password']
          : undefined
    if (value === undefined) throw new Error(`${service}: no value for Secret ${ref.name}/${ref.key}`)
    env[variable.name] = value
  }
  return env
}

/** podman flags for the pod's and container's securityContext; refuses a manifest that is not locked down. */
function securityFlags(pod: Doc, container: Doc, service: string): string[] {
  const podContext = pod.securityContext ?? {}
  const context = container.securityContext ?? {}
  const locked =
    podContext.runAsNonRoot === true &&
    podContext.runAsUser > 0 &&
    context.readOnlyRootFilesystem === true &&
    context.allowPrivilegeEscalation === false &&
    JSON.stringify(context.capabilities?.drop) === '["ALL"]'
  check(locked, `${service}: the manifest runs it non-root, read-only, without capabilities or privilege escalation`)
  const flags = [
    '--user',
    `${podContext.runAsUser}:${podContext.runAsGroup ?? podContext.runAsUser}`,
    '--read-only',
    '--cap-drop',
    'ALL'
  ]
  flags.push('--security-opt', 'no-new-privileges', '--read-only-tmpfs=false')
  for (const mount of container.volumeMounts ?? []) {
    const volume = (pod.volumes ?? []).find((candidate: Doc) => candidate.name === mount.name)
    if (volume?.emptyDir) flags.push('--tmpfs', `${mount.mountPath}:rw,nosuid,nodev,size=64m,mode=1777`)
  }
  return flags
}

// ------------------------------------------------------------------ the run

async function build(): Promise<void> {
  const { stdout: revision } = await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT })
  for (const service of SERVICES) {
    const started = performance.now()
    const code = await stream(
      'nice',
      [
        '-n',
        '19',
        'podman',
        'build',
        '--format',
        'docker',
        ...RUNTIME,
        '--network',
        'host',
        '--ignorefile',
        'deploy/docker/Dockerfile.dockerignore',
        '-f',
        'deploy/docker/Dockerfile',
        '--build-arg',
        `BASE_IMAGE=${BASE_IMAGE}`,
        '--build-arg',
        `SERVICE=${service}`,
        '--label',
        `org.opencontainers.image.revision=${revision.trim()}`,
        '-t',
        image(service),
        '.'
      ],
      service
    )
    const seconds = (performance.now() - started) / 1000
    if (code !== 0) throw new Error(`building ${service} failed (exit ${code})`)
    figures.push(`build ${service}: ${seconds.toFixed(0)} s`)
  }
}

async function inspectImages(): Promise<void> {
  for (const service of SERVICES) {
    const [info] = JSON.parse(await podman(['image', 'inspect', image(service)])) as Doc[]
    const config = info?.Config ?? {}
    figures.push(`image ${service}: ${(info?.Size / 1e6).toFixed(0)} MB`)
    check(config.User === '1000:1000', `${service}: image user ${config.User}`)
    check(
      JSON.stringify(config.Entrypoint) === '["node","--conditions=roster-dist"]' &&
        JSON.stringify(config.Cmd) === '["dist/server.js"]',
      `${service}: runs node on the compiled dist/server.js`
    )
    const listing = await podman([
      'run',
      '--rm',
      ...RUNTIME,
      '--network',
      'none',
      '--no-healthcheck',
      '--entrypoint',
      'sh',
      image(service),
      '-c',
      'cd /app && { find . -path ./node_modules -prune -o -name "*.ts" -print | grep -v "\\.d\\.ts$"; find . -type d -name test -not -path "*/node_modules/*"; ls node_modules/.pnpm | grep -E "^(tsx|esbuild|@esbuild|typescript|tap|@tapjs)[+@]"; command -v python3 make g++ gcc; } || true'
    ])
    check(
      listing === '',
      `${service}: no TypeScript sources, tests, tsx, esbuild, TypeScript or compiler toolchain in the image${listing ? `: ${listing.split('\n').slice(0, 5).join(', ')}` : ''}`
    )
  }
}

interface Running {
  service: Service
  name: string
  port: number
  internalPort: number
}

async function waitReady(target: Running, timeoutMs = 60_000): Promise<{ ms: number; url: string }> {
  const started = performance.now()
  while (performance.now() - started < timeoutMs) {
    for (const port of [target.internalPort, target.port]) {
      const url = `http://127.0.0.1:${port}/ready`
      const response = await fetch(url).catch(() => null)
      if (response?.status === 200) return { ms: performance.now() - started, url }
    }
    const state = await podman(['inspect', '--format', '{{.State.Status}}', target.name], { quiet: true }).catch(
      () => 'gone'
    )
    if (state !== 'running')
      throw new Error(
        `${target.name} is ${state}: ${await podman(['logs', '--tail', '20', target.name]).catch(() => '')}`
      )
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(
    `${target.name} not ready within ${timeoutMs} ms: ${await podman(['logs', '--tail', '20', target.name]).catch(() => '')}`
  )
}

async function json(response: Response): Promise<any> {
  const text = await response.text()
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

async function walk(gateway: string): Promise<void> {
  const username = `img_${id}`
  const password = `pw-${randomBytes(9).toString('base64url')}`
  const registered = await fetch(`${gateway}/api/users/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password, email: `${username}@example.com` })
  })
  const user = await json(registered)
  check(
    registered.ok && user.username === username && Number.isInteger(user.id),
    `register through the gateway: ${registered.status}`
  )

  const login = await fetch(`${gateway}/api/auth/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'roster-test-images' },
    body: JSON.stringify({ username, password })
  })
  const tokens = await json(login)
  check(login.status === 200 && typeof tokens.access === 'string', `login: ${login.status}`)
  const auth = { authorization: `Bearer ${tokens.access}` }

  const self = await fetch(`${gateway}/api/users/${user.id}/`, { headers: auth })
  const me = await json(self)
  check(self.status === 200 && me.username === username && !('password' in me), `self: ${self.status}`)

  // The login reaches the audit log through JetStream (identity's outbox → audit's consumer).
  const started = performance.now()
  let logs: any
  while (performance.now() - started < 30_000) {
    const response = await fetch(`${gateway}/api/users/${user.id}/user-logs/`, { headers: auth })
    logs = await json(response)
    const rows = Array.isArray(logs) ? logs : logs?.results
    if (response.status === 200 && rows?.some((row: Doc) => row.user === user.id && row.operation === 0)) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const rows = Array.isArray(logs) ? logs : logs?.results
  check(rows?.some((row: Doc) => row.user === user.id && row.operation === 0) === true, 'the login is in the audit log')
  figures.push(`login → audit log: ${(performance.now() - started).toFixed(0)} ms`)
}

async function main(): Promise<void> {
  const docs = await manifests()
  if (!SKIP_BUILD) await build()
  await inspectImages()

  const scratch = mkdtempSync(join(tmpdir(), 'roster-images-'))
  chmodSync(scratch, 0o755)
  const keyFile = join(scratch, 'jwt-ed25519.pem')
  writeFileSync(keyFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: 0o644
  })
  await admin((client) => client.query(`create database "${database}"`))
  const secrets: Secrets = {
    database: withDatabase(DATABASE_URL, database),
    adminUsername: 'admin',
    adminPassword: randomBytes(18).toString('base64url')
  }

  const ports = Object.fromEntries(
    await Promise.all(
      SERVICES.map(async (service) => [service, { port: await freePort(), internal: await freePort() }] as const)
    )
  ) as Record<Service, { port: number; internal: number }>
  // The cluster's names resolve to this machine's ports: the containers share its network.
  const local: Record<string, string> = {
    HOST: '127.0.0.1',
    NATS_URL,
    NATS_PREFIX: prefix,
    IDENTITY_URL: `http://127.0.0.1:${ports.identity.port}`,
    DIRECTORY_URL: `http://127.0.0.1:${ports.directory.port}`,
    AUDIT_URL: `http://127.0.0.1:${ports.audit.port}`,
    IDENTITY_INTERNAL_URL: `http://127.0.0.1:${ports.identity.internal}`,
    DIRECTORY_INTERNAL_URL: `http://127.0.0.1:${ports.directory.internal}`,
    AUDIT_INTERNAL_URL: `http://127.0.0.1:${ports.audit.internal}`
  }
  const envFlags = (env: Record<string, string>) =>
    Object.entries(env).flatMap(([key, value]) => ['-e', `${key}=${value}`])

  try {
    // 1. The migration Jobs, once each, before any service starts (as a rollout does).
    for (const service of SERVICES.filter((candidate) => candidate !== 'gateway')) {
      const job = docs.find((doc) => doc.kind === 'Job' && doc.metadata.name === `roster-${service}-migrate`)
      if (job === undefined) throw new Error(`no migration Job for ${service}`)
      const pod = job.spec.template.spec
      const container = pod.containers[0]
      const env = { ...environment(docs, container, secrets, `${service} migrate`), ...local }
      const started = performance.now()
      const output = await podman([
        'run',
        '--rm',
        ...RUNTIME,
        '--network',
        'host',
        '--no-healthcheck',
        ...securityFlags(pod, container, `${service} migrate`),
        ...envFlags(env),
        image(service),
        ...(container.args ?? [])
      ]).catch((error) => `FAILED ${error.stderr ?? error.message}`)
      check(
        /"migrations applied"/.test(output),
        `${service}: the migration Job's command (${(container.args ?? []).join(' ')}) applied ${output.match(/"applied":\[[^\]]*\]/)?.[0] ?? output}`
      )
      figures.push(`migrate ${service}: ${(performance.now() - started).toFixed(0)} ms`)
    }

    // 2. The services and the gateway, started together like pods, each with its Deployment's environment.
    const running: Running[] = []
    const startedAt = new Map<string, number>()
    for (const service of SERVICES) {
      const deployment = docs.find((doc) => doc.kind === 'Deployment' && doc.metadata.name === `roster-${service}`)
      const pod = deployment?.spec.template.spec
      const container = pod?.containers[0]
      if (container === undefined) throw new Error(`no Deployment for ${service}`)
      const env: Record<string, string> = {
        ...environment(docs, container, secrets, service),
        ...local,
        PORT: String(ports[service].port),
        INTERNAL_PORT: String(ports[service].internal)
      }
      check(env.MIGRATE_ON_START === 'false' || service === 'gateway', `${service}: started with migrations off`)
      const mounts: string[] = []
      if (env.ROSTER_JWT_PRIVATE_KEY_FILE) mounts.push('-v', `${keyFile}:${env.ROSTER_JWT_PRIVATE_KEY_FILE}:ro`)
      const name = `roster-images-${id}-${service}`
      startedAt.set(name, performance.now())
      await podman([
        'run',
        '-d',
        '--name',
        name,
        ...RUNTIME,
        '--network',
        'host',
        '--no-healthcheck',
        ...securityFlags(pod, container, service),
        ...mounts,
        ...envFlags(env),
        image(service)
      ])
      containers.push(name)
      running.push({ service, name, port: ports[service].port, internalPort: ports[service].internal })
    }
    for (const target of running) {
      const { url } = await waitReady(target)
      const ms = performance.now() - (startedAt.get(target.name) ?? 0)
      // From the process's start (podman's own container set-up excluded) to /ready answering 200.
      const processStarted = Date.parse(
        await podman(['inspect', '--format', '{{.State.StartedAt}}', target.name]).then((at) =>
          at.replace(/ \+0000 UTC$/, 'Z').replace(' ', 'T')
        )
      )
      const fromStart = Number.isNaN(processStarted) ? '?' : (Date.now() - processStarted).toFixed(0)
      figures.push(
        `ready ${target.service}: ${fromStart} ms after its process started, ${ms.toFixed(0)} ms after podman run (${url.includes(`:${target.internalPort}/`) ? 'internal' : 'public'} port)`
      )
      check(true, `${target.service} ready at ${url}`)
    }

    // 3. Through the gateway, as a client.
    await walk(`http://127.0.0.1:${ports.gateway.port}`)

    // 4. The gauges the alert rules use are exported by a running service.
    let metrics = ''
    for (const port of [ports.identity.internal, ports.identity.port]) {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => null)
      if (response?.status === 200) {
        metrics = await response.text()
        break
      }
    }
    for (const name of [
      'roster_outbox_unpublished',
      'roster_parked_events',
      'roster_consumer_pending',
      'http_server_errors_total'
    ])
      check(new RegExp(`^# TYPE ${name} `, 'm').test(metrics), `identity exports ${name}`)

    // 5. SIGTERM (podman stop) ends each process cleanly.
    for (const target of [...running].reverse()) {
      await podman(['stop', '--time', '20', target.name])
      const code = await podman(['inspect', '--format', '{{.State.ExitCode}}', target.name])
      check(code === '0', `${target.service} stopped on SIGTERM with exit code ${code}`)
    }
  } finally {
    for (const name of containers) await podman(['rm', '--force', name], { quiet: true }).catch(() => undefined)
    await admin((client) => client.query(`drop database if exists "${database}" with (force)`)).catch(() => undefined)
    await dropNatsPrefix(NATS_URL, prefix).catch(() => undefined)
    rmSync(scratch, { recursive: true, force: true })
  }
}

const started = performance.now()
main()
  .catch((error) => {
    console.error(error instanceof Error ? error.stack : error)
    failures++
  })
  .finally(() => {
    figures.push(`total: ${((performance.now() - started) / 1000).toFixed(0)} s`)
    for (const figure of figures) log(figure)
    log(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`)
    process.exitCode = failures === 0 ? 0 : 1
  })
