import type { MigrationObject } from '@mikro-orm/core'
import { createOrm, prepareSchema, type AnyEntitySchema } from '../plugins/orm.js'
import pg from 'pg'
import { TEST_DATABASE_URL, uniqueName } from './index.js'
import { kitEntities, kitMigrations } from '../kit-migration.js'

interface Teardown {
  after(fn: () => unknown): void
}

/**
 * Migrates a fresh database with the kit's and the service's migrations, then asks MikroORM what it would change
 * to make that schema match the entities. The answer is `''` when every table has exactly one entity that matches it; the
 * SQL otherwise (tables without an entity show up as `drop table`). The migrations table is MikroORM's own.
 */
export async function schemaDiff(
  t: Teardown,
  service: string,
  entities: AnyEntitySchema[],
  migrations: MigrationObject[]
): Promise<string> {
  // A database of its own: MikroORM reads the catalogue of every schema in the database, and other test files
  // create and drop theirs meanwhile (an index dropped mid-read has no definition, and MikroORM fails on it).
  const databaseUrl = new URL(TEST_DATABASE_URL)
  const database = uniqueName(`schemadiff_${service}`).toLowerCase()
  databaseUrl.pathname = `/${database}`
  const admin = new URL(TEST_DATABASE_URL)
  admin.pathname = '/postgres'
  const run = async (text: string) => {
    const client = new pg.Client({ connectionString: admin.toString() })
    await client.connect()
    try {
      await client.query(text)
    } finally {
      await client.end()
    }
  }
  await run(`create database "${database}"`)
  t.after(() => run(`drop database if exists "${database}" with (force)`))
  const options = {
    databaseUrl: databaseUrl.toString(),
    schema: service,
    entities: [...kitEntities, ...entities],
    migrations: [...kitMigrations, ...migrations],
    poolMax: 2,
    migrate: true
  }
  const orm = await createOrm(options)
  try {
    await prepareSchema(orm, options)
    const sql = await orm
      .getSchemaGenerator()
      .getUpdateSchemaSQL({ wrap: false, safe: false, dropTables: true, schema: service })
    return sql.trim()
  } finally {
    await orm.close()
  }
}
