import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import {
  ensureAdminPassword,
  ensureJwtKey,
  NatsServerNotFoundError,
  startEmbeddedPostgres,
  startNatsServer
} from '../local/infra.js'
import { acceptsConnections, findFreePort } from '../local/ports.js'

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'roster-infra-'))
  // Under root, embedded PostgreSQL runs as `postgres`, which must be able to enter the directory.
  await chmod(dir, 0o755)
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function occupy(t: Test): Promise<number> {
  const port = await findFreePort()
  const server: Server = createServer()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return port
}

/** The process group of `pid` (field 5 of /proc/<pid>/stat, after the parenthesised command). */
async function processGroup(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
}

async function query(url: string, sql: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(sql)).rows
  } finally {
    await client.end()
  }
}

t.test('startNatsServer runs nats-server with JetStream and stops it', async (t) => {
  const dir = await tempDir(t)
  const nats = await startNatsServer({ dataDir: join(dir, 'nats'), port: 0 })
  t.teardown(nats.stop)
  t.match(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/)
  t.not(await processGroup(nats.pid), await processGroup(process.pid), 'nats-server runs in a process group of its own')

  const nc = await connect({ servers: nats.url })
  try {
    const jsm = await jetstreamManager(nc)
    const account = await jsm.getAccountInfo()
    t.type(account.limits, 'object', 'JetStream answers account info')
    await jsm.streams.add({ name: 'INFRA_TEST', subjects: ['infra-test.>'] })
    const ack = await jetstream(nc).publish('infra-test.hello', 'hi')
    t.equal(ack.seq, 1, 'a message is stored in a stream')
  } finally {
    await nc.close()
  }
  t.ok(existsSync(join(dir, 'nats', 'jetstream')), 'the store lives in the data directory')

  await nats.stop()
  t.notOk(await acceptsConnections(nats.port), 'the port is closed after stop()')
  await nats.stop()
  t.pass('stop() twice is harmless')
})

t.test('startNatsServer moves to a free port when the requested one is taken', async (t) => {
  const dir = await tempDir(t)
  const taken = await occupy(t)
  const nats = await startNatsServer({ dataDir: join(dir, 'nats'), port: taken })
  t.teardown(nats.stop)
  t.not(nats.port, taken)
  t.ok(nats.portFellBack)
  const nc = await connect({ servers: nats.url })
  t.type((await (await jetstreamManager(nc)).getAccountInfo()).limits, 'object', 'it answers on the other port')
  await nc.close()
})

t.test('startNatsServer without a binary says how to install one', async (t) => {
  const dir = await tempDir(t)
  const error = await startNatsServer({ dataDir: join(dir, 'nats'), searchDirs: [dir] }).catch((e: unknown) => e)
  t.type(error, NatsServerNotFoundError)
  t.match((error as Error).message, /apt-get install nats-server/)
  t.match((error as Error).message, /github\.com\/nats-io\/nats-server\/releases/)
})

t.test('ensureJwtKey makes one usable Ed25519 key', async (t) => {
  const dir = await tempDir(t)
  const file = await ensureJwtKey(join(dir, '.data'))
  t.equal(file, join(dir, '.data', 'jwt-ed25519.pem'))
  t.equal((await stat(file)).mode & 0o777, 0o600, 'only the owner can read it')
  const pem = await readFile(file, 'utf8')
  t.match(pem, /^-----BEGIN PRIVATE KEY-----/, 'PKCS#8 PEM')
  const key = createPrivateKey(pem)
  t.equal(key.asymmetricKeyType, 'ed25519')
  const data = Buffer.from('header.payload')
  t.ok(verify(null, data, createPublicKey(key), sign(null, data, key)), 'it signs and verifies')

  t.equal(await ensureJwtKey(join(dir, '.data')), file)
  t.equal(await readFile(file, 'utf8'), pem, 'a second call keeps the key')
})

t.test('ensureAdminPassword makes one random password', async (t) => {
  const dir = await tempDir(t)
  const first = await ensureAdminPassword(dir)
  t.equal(first.path, join(dir, 'admin-password'))
  t.ok(first.password.length >= 20)
  t.equal((await stat(first.path)).mode & 0o777, 0o600)
  t.same(await ensureAdminPassword(dir), first, 'a second call keeps it')
  const other = await tempDir(t)
  t.not((await ensureAdminPassword(other)).password, first.password)
})

t.test('startEmbeddedPostgres creates database roster beside a PostgreSQL on 5432', async (t) => {
  const dir = await tempDir(t)
  const machinePostgres = await acceptsConnections(5432)
  const dataDir = join(dir, 'pg')
  const postgres = await startEmbeddedPostgres({ dataDir })
  t.teardown(postgres.stop)
  if (machinePostgres) {
    t.not(postgres.port, 5432, 'a PostgreSQL already on 5432 is no failure')
    t.ok(postgres.portFellBack)
  }
  t.match(postgres.url, new RegExp(`^postgres://postgres:[^@]+@127\\.0\\.0\\.1:${postgres.port}/roster$`))
  // A terminal's Ctrl-C goes to the launcher's process group only; the launcher stops PostgreSQL last.
  t.ok(postgres.pid > 0)
  t.not(
    await processGroup(postgres.pid),
    await processGroup(process.pid),
    'postgres runs in a process group of its own'
  )
  const [row] = await query(
    postgres.url,
    "SELECT current_database() AS db, current_setting('server_encoding') AS enc, 1 + 1 AS two"
  )
  t.same(row, { db: 'roster', enc: 'UTF8', two: 2 })
  await query(postgres.url, 'CREATE TABLE kept (id int)')

  await postgres.stop()
  t.notOk(await acceptsConnections(postgres.port), 'stopped')

  const again = await startEmbeddedPostgres({ dataDir, port: 0 })
  t.teardown(again.stop)
  t.same(
    await query(again.url, "SELECT to_regclass('kept') IS NOT NULL AS kept"),
    [{ kept: true }],
    'data persists across restarts'
  )
  await again.stop()
})

t.test(
  'a data directory postgres cannot reach: a new cluster goes to /var/tmp, an existing one is an error',
  { skip: process.getuid?.() !== 0 && 'only as root' },
  async (t) => {
    const dir = await tempDir(t)
    await chmod(dir, 0o700)
    const lines: string[] = []
    const postgres = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), port: 0, log: (line) => lines.push(line) })
    t.teardown(() => rm(dirname(postgres.dataDir), { recursive: true, force: true }))
    t.teardown(postgres.stop)
    t.match(postgres.dataDir, /^\/var\/tmp\/roster-postgres-[0-9a-f]{16}\/pg$/)
    t.ok(
      lines.some((line) => line.includes(`cannot enter ${dir}`) && line.includes(postgres.dataDir)),
      'the launcher says where the cluster went, and why'
    )
    t.equal(
      postgres.dataDirMoved,
      lines.find((line) => line.includes('cannot enter'))
    )
    t.same(await query(postgres.url, 'SELECT 1 AS one'), [{ one: 1 }])
    await postgres.stop()

    const held = await tempDir(t)
    await mkdir(join(held, 'pg'))
    await writeFile(join(held, 'pg', 'PG_VERSION'), '15\n')
    await chmod(held, 0o700)
    await t.rejects(startEmbeddedPostgres({ dataDir: join(held, 'pg') }), /cannot enter .*holds the cluster/)
  }
)
