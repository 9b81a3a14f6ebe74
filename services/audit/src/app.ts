import { BlackListEntrySchema, UserLogSchema } from '@roster/contracts'
import { buildService, type ServiceApp } from '@roster/service-kit'
import type { FastifyServerOptions } from 'fastify'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { AuditConfig } from './config.js'
import { entities } from './entities/index.js'
import { migrations } from './migrations/index.js'
import { KnownUsers } from './domain/known-users.js'
import { auditConstraints } from './domain/constraints.js'
import { identityConsumer } from './consumers/identity.js'
import { userLogRoutes } from './routes/user-logs/index.js'
import { blackListRoutes } from './routes/black-list/index.js'
import { maintainLogPartitions } from './repositories/log-partitions.js'
import './context.js'

/**
 * The audit service: user logs written from identity's session events, the known user ids from its
 * user events, and the patient blacklist. Tokens are verified with identity's JWKS at IDENTITY_URL; an
 * unknown user id is asked of identity's internal listener (IDENTITY_INTERNAL_URL).
 */
export async function buildApp(
  config: AuditConfig,
  options: { logger?: FastifyServerOptions['logger'] } = {}
): Promise<ServiceApp> {
  return buildService({
    name: 'audit',
    description: 'User logs (from identity events) and the patient blacklist.',
    config,
    logger: options.logger,
    entities,
    migrations,
    constraints: auditConstraints,
    schemas: [UserLogSchema, BlackListEntrySchema],
    consumers: [identityConsumer()],
    async setup(app) {
      app.decorate('audit', {
        config,
        knownUsers: new KnownUsers(config.IDENTITY_INTERNAL_URL, config.IDENTITY_READ_THROUGH_TIMEOUT_MS, app.log)
      })
      keepLogPartitions(app, config)
    },
    routes: [userLogRoutes, blackListRoutes]
  })
}

const HOUR_MS = 3_600_000
const RETRY_MS = 30_000

/**
 * Log partitions made ahead and retention applied at start-up (not awaited: a log row for a month with no
 * partition yet lands in the default partition, and is moved into its month's partition on the next run),
 * then every hour, or after 30 s when a run failed (the migration Job not done yet, the database away).
 */
function keepLogPartitions(app: ServiceApp, config: AuditConfig): void {
  let timer: NodeJS.Timeout | undefined
  let closed = false
  let running: Promise<void> = Promise.resolve()
  const run = async () => {
    let next = HOUR_MS
    try {
      const dropped = await maintainLogPartitions(app.orm.em.fork() as EntityManager, {
        ahead: config.AUDIT_PARTITIONS_AHEAD,
        retentionDays: config.AUDIT_RETENTION_DAYS
      })
      if (dropped.length > 0) app.log.info({ dropped }, 'user log partitions past retention dropped')
    } catch (error) {
      app.log.warn({ err: error }, 'user log partitions not maintained; trying again')
      next = RETRY_MS
    }
    if (!closed) timer = setTimeout(() => (running = run()), next).unref()
  }
  app.addHook('onReady', async () => {
    running = run()
  })
  app.addHook('onClose', async () => {
    closed = true
    clearTimeout(timer)
    await running
  })
}
