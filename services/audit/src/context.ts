import type { AuditConfig } from './config.js'
import type { KnownUsers } from './domain/known-users.js'

/** What audit's routes share; decorated onto the app as `audit`. */
export interface AuditContext {
  config: AuditConfig
  knownUsers: KnownUsers
}

declare module 'fastify' {
  interface FastifyInstance {
    audit: AuditContext
  }
}
