import t from 'tap'
import pg from 'pg'
import { isolate, eventually, serviceTestConfig } from '@roster/service-kit/testing'
import {
  BaseConfigSchema,
  buildService,
  injectInternal,
  loadConfig,
  migrateService,
  type BaseConfig
} from '../src/index.js'

// Migrations off at start (a Kubernetes migration Job runs them once per rollout): the service creates
// nothing, is not ready until the Job has run, and then is; the Job's command is idempotent.

function probeConfig(overrides: Partial<BaseConfig>): BaseConfig {
  // An empty environment: the test does not depend on the caller's variables.
  return loadConfig(BaseConfigSchema, overrides, {})
}

async function schemaExists(url: string, schema: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query('select 1 from pg_namespace where nspname = $1', [schema])
    return rows.length === 1
  } finally {
    await client.end()
  }
}

t.test('MIGRATE_ON_START defaults to true (pnpm start), and reads false from the environment', async (t) => {
  t.equal(loadConfig(BaseConfigSchema, {}, {}).MIGRATE_ON_START, true)
  t.equal(loadConfig(BaseConfigSchema, {}, { MIGRATE_ON_START: 'false' }).MIGRATE_ON_START, false)
  t.throws(() => loadConfig(BaseConfigSchema, {}, { MIGRATE_ON_START: 'later' }), /MIGRATE_ON_START/)
})

t.test('a service started with migrations off is unready until migrateService has run, then ready', async (t) => {
  const iso = await isolate(t)
  const config = probeConfig({ ...serviceTestConfig(iso, 'probe'), MIGRATE_ON_START: false })
  const definition = { name: 'probe', description: 'probe', entities: [], migrations: [], routes: [] }

  const app = await buildService({ ...definition, config })
  t.after(() => app.close())
  await app.ready()
  t.notOk(await schemaExists(iso.DATABASE_URL, config.DB_SCHEMA), 'the service created no schema')
  const before = await injectInternal(app, { method: 'GET', url: '/ready' })
  t.equal(before.statusCode, 503)
  t.match(before.json().checks.migrations, /not applied yet/)

  const first = await migrateService({ ...definition, config })
  t.same(first.applied, ['KitMigration20261123000000'], 'the Job applies the pending migrations')
  t.ok(await schemaExists(iso.DATABASE_URL, config.DB_SCHEMA))
  const second = await migrateService({ ...definition, config })
  t.same(second.applied, [], 'a second run applies nothing')

  const after = await eventually(async () => {
    const response = await injectInternal(app, { method: 'GET', url: '/ready' })
    return response.statusCode === 200 && response
  })
  t.equal(after.json().checks.migrations, 'ok')
})

t.test('/metrics exports the outbox, parked-event and consumer gauges the alert rules use', async (t) => {
  const iso = await isolate(t)
  const config = probeConfig(serviceTestConfig(iso, 'probe'))
  const app = await buildService({
    name: 'probe',
    description: 'probe',
    config,
    entities: [],
    migrations: [],
    routes: [],
    consumers: [{ durable: 'probe', stream: 'DIRECTORY', handlers: {} }]
  })
  t.after(() => app.close())
  await app.ready()
  const gauge = async (name: string) => {
    const text = (await injectInternal(app, { method: 'GET', url: '/metrics' })).body
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    return line === undefined ? undefined : Number(line.split(' ').at(-1))
  }
  t.equal(
    await eventually(async () => (await gauge('roster_consumer_pending')) === 0),
    true,
    "the durable consumer's lag is exported"
  )
  t.equal(await gauge('roster_parked_events'), 0)
  t.equal(await gauge('roster_outbox_unpublished'), 0)
  t.equal(await gauge('roster_outbox_oldest_unpublished_seconds'), 0)
  await app.orm.em
    .getConnection()
    .execute(
      `insert into parked_event (consumer, subject, payload, reason, deliveries) values ('c', 's', '{}', 'test', 6)`
    )
  t.equal(await gauge('roster_parked_events'), 1, 'a parked event is counted')
})
