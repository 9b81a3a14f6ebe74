import { BlackListEntrySchema, UserLogSchema } from '@roster/contracts'
import { buildService, type ServiceApp } from '@roster/service-kit'
import type { FastifyServerOptions } from 'fastify'
import type { AuditConfig } from './config.js'
import { entities } from './entities/index.js'
import { migrations } from './migrations/index.js'
import { KnownUsers } from './domain/known-users.js'
import { auditConstraints } from './domain/constraints.js'
import { identityConsumer } from './consumers/identity.js'
import { userLogRoutes } from './routes/user-logs/index.js'
import { blackListRoutes } from './routes/black-list/index.js'
import './context.js'

/**
 * The audit service: user logs written from identity's session events, the known user ids from its
 * user events, and the patient blacklist. Tokens are verified with identity's JWKS at IDENTITY_URL; an
 * unknown user id is asked of identity's internal listener (IDENTITY_INTERNAL_URL).
 */
export async function buildApp(config: AuditConfig, options: { logger?: FastifyServerOptions['logger'] } = {}): Promise<ServiceApp> {
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
    },
    routes: [userLogRoutes, blackListRoutes]
  })
}
