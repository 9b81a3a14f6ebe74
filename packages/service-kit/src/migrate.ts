import type { MigrationObject } from '@mikro-orm/core'
import type { BaseConfig } from './config.js'
import { kitMigrations } from './kit-migration.js'
import { createOrm, ensureDatabase, prepareSchema, type AnyEntitySchema, type OrmOptions } from './plugins/orm.js'

export type { OrmOptions }

export interface MigrationTarget {
  name: string
  config: BaseConfig
  entities: AnyEntitySchema[]
  migrations: MigrationObject[]
}

/**
 * Applies a service's pending migrations (the kit's and its own) and returns: the database is created
 * when missing, the schema when missing, under the same advisory lock as migrate-at-start. What a
 * Kubernetes migration Job runs once per rollout (`node dist/migrate.js`), before pods started with
 * `MIGRATE_ON_START=false` become ready.
 */
export async function migrateService(target: MigrationTarget): Promise<{ applied: string[] }> {
  const { config } = target
  const options: OrmOptions = {
    databaseUrl: config.DATABASE_URL,
    schema: config.DB_SCHEMA || target.name,
    entities: target.entities,
    migrations: [...kitMigrations, ...target.migrations],
    poolMax: 1,
    migrate: true
  }
  await ensureDatabase(options.databaseUrl)
  const orm = await createOrm(options)
  try {
    const before = new Set(
      (
        await orm
          .getMigrator()
          .getExecutedMigrations()
          .catch(() => [])
      ).map((m) => m.name)
    )
    await prepareSchema(orm, options)
    const after = await orm.getMigrator().getExecutedMigrations()
    return { applied: after.map((m) => m.name).filter((name) => !before.has(name)) }
  } finally {
    await orm.close()
  }
}

/** The body of a service's `migrate` command: migrates, logs one JSON line, sets the exit code. */
export async function runMigrationCommand(target: MigrationTarget): Promise<void> {
  const started = Date.now()
  const schema = target.config.DB_SCHEMA || target.name
  try {
    const { applied } = await migrateService(target)
    console.log(
      JSON.stringify({
        level: 30,
        time: Date.now(),
        service: target.name,
        schema,
        applied,
        ms: Date.now() - started,
        msg: 'migrations applied'
      })
    )
  } catch (error) {
    const { message, code } = error as { message?: string; code?: string }
    console.error(
      JSON.stringify({
        level: 50,
        time: Date.now(),
        service: target.name,
        schema,
        code,
        msg: `migration failed: ${message}`
      })
    )
    process.exitCode = 1
  }
}
