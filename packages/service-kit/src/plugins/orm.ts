import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import pg from 'pg'
import { MikroORM, type EntityManager } from '@mikro-orm/postgresql'
import { Migrator } from '@mikro-orm/migrations'
import type { EntitySchema, MigrationObject } from '@mikro-orm/core'

declare module 'fastify' {
  interface FastifyInstance {
    orm: MikroORM
    /** The ORM's own EntityManager as a `Reads`: statements outside any transaction, no fork (see `Reads`). */
    reads: Reads
  }
  interface FastifyRequest {
    /** A fork of the entity manager for this request alone. */
    em: EntityManager
  }
}

/**
 * What a read outside any transaction needs of an EntityManager: its driver (the named statements'
 * connections) and connection, and that there is no transaction. `app.reads` is the ORM's own
 * EntityManager so typed: a list that runs only raw statements takes no fork for the request (a fork
 * builds a unit of work and an identity map it never uses: 5–6 % of audit's CPU per list page), and the
 * type keeps entity operations, which need a fork, from compiling.
 */
export type Reads = Pick<EntityManager, 'getDriver' | 'getConnection' | 'getTransactionContext'>

/** An entity of any row type: MikroORM's own signatures take `EntitySchema<any, any>`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- as MikroORM's metadata does
export type AnyEntitySchema = EntitySchema<any, any>

export interface OrmOptions {
  databaseUrl: string
  schema: string
  entities: AnyEntitySchema[]
  migrations: MigrationObject[]
  poolMax: number
  /** Apply pending migrations at start-up (under an advisory lock, so replicas take turns). */
  migrate: boolean
}

/** Creates the database named in the URL when it does not exist yet (a fresh server, a first start). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const probe = new pg.Client({ connectionString: databaseUrl })
  try {
    await probe.connect()
    return
  } catch (error) {
    if ((error as { code?: string }).code !== '3D000') throw error
  } finally {
    await probe.end().catch(() => undefined)
  }
  const target = new URL(databaseUrl)
  const name = decodeURIComponent(target.pathname.slice(1))
  target.pathname = '/postgres'
  const admin = new pg.Client({ connectionString: target.toString() })
  await admin.connect()
  try {
    await admin.query(`create database "${name.replace(/"/g, '""')}"`)
  } catch (error) {
    // Another replica created it in between.
    if (!['42P04', '23505'].includes((error as { code?: string }).code ?? '')) throw error
  } finally {
    await admin.end()
  }
}

async function withAdvisoryLock<T>(databaseUrl: string, key: string, fn: () => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    await client.query('select pg_advisory_lock(hashtext($1))', [key])
    try {
      return await fn()
    } finally {
      await client.query('select pg_advisory_unlock(hashtext($1))', [key])
    }
  } finally {
    await client.end()
  }
}

/**
 * Creates the service's schema and migrates it; safe to run from several replicas at once. A schema
 * dropped by someone else while the migrator lists tables (3F000, seen when test runs share a
 * database) is retried.
 */
export async function prepareSchema(orm: MikroORM, options: OrmOptions): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrate(orm, options)
    } catch (error) {
      if ((error as { code?: string }).code !== '3F000' || attempt >= 5) throw error
      await new Promise((r) => setTimeout(r, 100 * attempt))
    }
  }
}

async function migrate(orm: MikroORM, options: OrmOptions): Promise<void> {
  await withAdvisoryLock(options.databaseUrl, `roster-migrate:${options.schema}`, async () => {
    const connection = orm.em.getConnection()
    await connection.execute(`create schema if not exists "${options.schema}"`)
    // Trigram indexes make substring search fast; the extension is database-wide, so it lives in public.
    await connection.execute('create extension if not exists pg_trgm schema public').catch(() => undefined)
    await orm.getMigrator().up()
  })
}

export async function createOrm(options: OrmOptions): Promise<MikroORM> {
  return MikroORM.init({
    clientUrl: options.databaseUrl,
    schema: options.schema,
    entities: options.entities,
    extensions: [Migrator],
    // Unqualified names resolve to the service's own schema (then public, for pg_trgm).
    driverOptions: { connection: { options: `-c search_path="${options.schema}",public` } },
    pool: { min: 0, max: options.poolMax },
    migrations: {
      migrationsList: options.migrations,
      tableName: 'mikro_orm_migrations',
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: true
    },
    discovery: { warnWhenNoEntities: false },
    allowGlobalContext: false,
    forceUtcTimezone: true,
    debug: false
  })
}

/** A readiness check that passes once every known migration is recorded as applied (then stays passed). */
function schemaIsCurrent(orm: MikroORM, options: OrmOptions): () => Promise<void> {
  let current = false
  return async () => {
    if (current) return
    const rows = await orm.em
      .getConnection()
      .execute<{ name: string }[]>(`select name from "${options.schema}".mikro_orm_migrations`)
      .catch((error: { code?: string }) => {
        if (error.code === '42P01' || error.code === '3F000') return []
        throw error
      })
    const applied = new Set(rows.map((row) => row.name.replace(/\.[jt]s$/, '')))
    const pending = options.migrations.filter((migration) => !applied.has(migration.name.replace(/\.[jt]s$/, '')))
    if (pending.length > 0) throw new Error(`${pending.length} migration(s) not applied yet: run the migration Job`)
    current = true
  }
}

/** MikroORM for the service: one ORM, a forked EntityManager per request (made on first use), closed with the app. */
export const ormPlugin = fp(
  async function orm(app: FastifyInstance, options: OrmOptions) {
    if (options.migrate) await ensureDatabase(options.databaseUrl)
    const orm = await createOrm(options)
    app.addHook('onClose', async () => orm.close())
    if (options.migrate) await prepareSchema(orm, options)
    app.decorate('orm', orm)
    app.decorate('reads', orm.em as Reads)
    // The ORM's type parsers too (dates and times stay text, as MikroORM reads them), so that a statement
    // answers the same rows on these connections as in a transaction (`namedSql`).
    const { types } = orm.em.getConnection().getConnectionOptions() as { types?: pg.CustomTypesConfig }
    const reads = new ReadClients(options, types)
    readClientsOf.set(orm.em.getDriver(), reads)
    app.addHook('onClose', async () => reads.close())
    // The request's fork is made the first time a route asks for it, and kept: a request that never
    // touches the database (a refused token, a 404, JWKS, health) pays for no fork, and none pays for an
    // async hook. Routes see one `request.em` per request as before.
    app.decorateRequest(FORK, null)
    app.decorateRequest('em', {
      getter(this: FastifyRequest) {
        const request = this as FastifyRequest & { [FORK]: EntityManager | null }
        return (request[FORK] ??= orm.em.fork() as EntityManager)
      },
      setter(this: FastifyRequest, em: EntityManager) {
        ;(this as FastifyRequest & { [FORK]: EntityManager | null })[FORK] = em
      }
    })
    app.readiness.add('database', async () => {
      await orm.em.getConnection().execute('select 1')
    })
    // Migrations run elsewhere (a Job): not ready until the schema has every migration this build knows.
    if (!options.migrate) app.readiness.add('migrations', schemaIsCurrent(orm, options))
  },
  { name: 'roster-orm', dependencies: ['roster-health'] }
)

/** The request's fork, once made (see the `em` getter). */
const FORK = Symbol('roster.em')

/**
 * A few pg connections of the service's own (same URL and search_path as the ORM's) for hot statements
 * outside transactions (`preparedQuery`). A statement goes to the connection with the fewest statements
 * in flight and waits there for the one before it: no pool acquire and release, no timers, no knex, and
 * PostgreSQL keeps each named statement parsed and planned per connection. A connection is
 * opened when every open one is busy (up to `size`), and one that fails or ends is dropped (the next
 * statement opens another). With the lazy fork, identity's CPU per GET /api/users/{pk}/ fell from ~300 to
 * ~230 µs, and its PostgreSQL's from ~110 to ~80 (`pnpm bench cpu`, same machine, alternate runs).
 */
class ReadClients {
  private readonly clients: { client: pg.Client; tail: Promise<unknown>; inFlight: number; broken: boolean }[] = []
  private readonly size: number
  private closed = false

  constructor(
    private readonly options: Pick<OrmOptions, 'databaseUrl' | 'schema' | 'poolMax'>,
    private readonly types?: pg.CustomTypesConfig
  ) {
    // Up to 8 (or the pool's size): as many statements at once as a few busy clients send, so that a slow
    // page (a deep offset at scale) rarely has a quick read waiting behind it on the same connection.
    this.size = Math.max(1, Math.min(8, options.poolMax))
  }

  async query<T>(name: string, text: string, values: unknown[], rowMode?: 'array'): Promise<T[]> {
    if (this.closed) throw new Error('the database connections are closed')
    const slot = this.pick()
    // One statement at a time per connection, in order (pg deprecates queueing on a busy client).
    const run = slot.tail.then(() => slot.client.query(statement(name, text, values, rowMode)))
    slot.tail = run.then(ignore, ignore)
    slot.inFlight++
    try {
      return (await run).rows as T[]
    } catch (error) {
      // Statements queued on a connection that broke fail with pg's "not queryable" errors, which carry no
      // SQLSTATE: they are the database being unreachable (a 503 to the client), as the connection's own is.
      const e = error as { code?: string }
      if (slot.broken && typeof e === 'object' && e && !e.code) e.code = '08006'
      throw error
    } finally {
      slot.inFlight--
    }
  }

  private pick() {
    let best: (typeof this.clients)[number] | undefined
    for (const slot of this.clients) if (!best || slot.inFlight < best.inFlight) best = slot
    if (best && (best.inFlight === 0 || this.clients.length >= this.size)) return best
    const client = new pg.Client({
      connectionString: this.options.databaseUrl,
      // As the ORM's connections (createOrm): unqualified names are the service's schema, then public.
      options: `-c search_path="${this.options.schema}",public`,
      // As unreachable as a refused connection after this long (a 503), rather than hanging requests.
      connectionTimeoutMillis: 10_000,
      types: this.types
    })
    const slot = { client, tail: client.connect() as Promise<unknown>, inFlight: 0, broken: false }
    const drop = () => {
      slot.broken = true
      const index = this.clients.indexOf(slot)
      if (index >= 0) this.clients.splice(index, 1)
    }
    // A broken connection fails its queued statements (their callers get the error) and leaves the set.
    client.on('error', drop)
    client.on('end', drop)
    slot.tail.catch(drop)
    this.clients.push(slot)
    return slot
  }

  async close(): Promise<void> {
    this.closed = true
    const open = this.clients.splice(0)
    await Promise.all(open.map((slot) => slot.client.end().catch(() => undefined)))
  }
}

const ignore = () => undefined

/** A named statement's config for pg, with `rowMode: 'array'` when asked (pg's types keep the two apart). */
function statement(name: string, text: string, values: unknown[], rowMode?: 'array'): pg.QueryConfig {
  return (rowMode === undefined ? { name, text, values } : { name, text, values, rowMode }) as pg.QueryConfig
}

/** The read connections of each ORM (by its driver, which every fork of its EntityManager shares). */
const readClientsOf = new WeakMap<object, ReadClients>()

/**
 * Rows of a named (prepared) statement, run on one of the ORM plugin's own connections: PostgreSQL parses
 * and plans it once per connection, and neither MikroORM, knex nor a pool acquire is involved. For a hot
 * read, or a single write that commits alone, outside any transaction (it throws inside one: that
 * transaction's connection is not this one).
 * `text` uses `$1`…; one `name` must always carry the same `text`. An ORM made without the plugin (scripts)
 * runs it on one of its pool's connections instead.
 */
export async function preparedQuery<T>(em: Reads, name: string, text: string, values: unknown[]): Promise<T[]> {
  return runPrepared<T>(em, name, text, values)
}

/**
 * `preparedQuery` with each row as an array, in the order of the statement's select list (pg's
 * `rowMode: 'array'`): no object is built per row only to be copied into the representation. On a page of
 * 100 user logs pg's own parsing fell from ~330 to ~230 µs of Node CPU (a bare pg client, alternated runs).
 */
export async function preparedRows(em: Reads, name: string, text: string, values: unknown[]): Promise<unknown[][]> {
  return runPrepared<unknown[]>(em, name, text, values, 'array')
}

async function runPrepared<T>(
  em: Reads,
  name: string,
  text: string,
  values: unknown[],
  rowMode?: 'array'
): Promise<T[]> {
  if (em.getTransactionContext()) throw new Error(`preparedQuery(${name}) inside a transaction`)
  const reads = readClientsOf.get(em.getDriver())
  if (reads) return reads.query<T>(name, text, values, rowMode)
  const client = em.getConnection().getKnex().client as {
    acquireConnection(): Promise<pg.PoolClient>
    releaseConnection(connection: pg.PoolClient): Promise<void>
  }
  const connection = await client.acquireConnection()
  try {
    return (await connection.query(statement(name, text, values, rowMode))).rows as T[]
  } finally {
    await client.releaseConnection(connection)
  }
}
