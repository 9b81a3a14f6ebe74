import type { MigrationObject } from '@mikro-orm/core'
import { createOrm, prepareSchema, type AnyEntitySchema } from '../plugins/orm.js'
import { isolate, TEST_DATABASE_URL } from './index.js'
import { kitEntities, kitMigrations } from '../kit-migration.js'

interface Teardown {
  after(fn: () => unknown): void
}

/**
 * Migrates a fresh schema with the kit's and the service's migrations, then asks MikroORM what it would change to make that
 * schema match the entities. The answer is `''` when every table has exactly one entity that matches it; the
 * SQL otherwise (tables without an entity show up as `drop table`). The migrations table is MikroORM's own.
 */
export async function schemaDiff(
  t: Teardown,
  service: string,
  entities: AnyEntitySchema[],
  migrations: MigrationObject[]
): Promise<string> {
  const iso = await isolate(t)
  const schema = iso.schema(service)
  const options = {
    databaseUrl: TEST_DATABASE_URL,
    schema,
    entities: [...kitEntities, ...entities],
    migrations: [...kitMigrations, ...migrations],
    poolMax: 2,
    migrate: true
  }
  const orm = await createOrm(options)
  try {
    await prepareSchema(orm, options)
    // MikroORM reads the catalogue of every schema in the database: another test dropping its own schema
    // meanwhile fails the read (3F000 / 42P01), which says nothing about this one, so it is read again.
    for (let attempt = 1; ; attempt++) {
      try {
        const sql = await orm
          .getSchemaGenerator()
          .getUpdateSchemaSQL({ wrap: false, safe: false, dropTables: true, schema })
        return sql.trim()
      } catch (error) {
        const code = (error as { code?: string }).code
        if (attempt >= 5 || (code !== '3F000' && code !== '42P01')) throw error
      }
    }
  } finally {
    await orm.close()
  }
}
