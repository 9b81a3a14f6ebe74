import type { IdentityConfig } from './config.js'
import type { Passwords } from './domain/passwords.js'
import type { Tokens } from './domain/tokens.js'
import type { Sessions, Client } from './domain/sessions.js'
import type { DirectoryReplica } from './domain/directory-replica.js'
import type { FastifyRequest } from 'fastify'
import type { Jwks } from '@roster/contracts'

/** What identity's routes and consumers share; decorated onto the app as `identity`. */
export interface IdentityContext {
  config: IdentityConfig
  passwords: Passwords
  tokens: Tokens
  /** The signing key's public part, then those of keys it replaced. */
  jwks: Jwks
  sessions: Sessions
  replica: DirectoryReplica
}

declare module 'fastify' {
  interface FastifyInstance {
    identity: IdentityContext
  }
}

export function clientOf(request: FastifyRequest): Client {
  const userAgent = request.headers['user-agent']
  return { ip: request.ip, userAgent: typeof userAgent === 'string' ? userAgent.slice(0, 512) : '' }
}
