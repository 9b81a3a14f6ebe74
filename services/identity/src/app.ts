import type { EntityManager } from '@mikro-orm/postgresql'
import { ProfileSchema, UserSchema, UserGroupRowSchema, residentIdCheck, passwordCheck } from '@roster/contracts'
import { buildService, staticKeyResolver, type ServiceApp } from '@roster/service-kit'
import type { FastifyServerOptions } from 'fastify'
import type { IdentityConfig } from './config.js'
import { entities } from './entities/index.js'
import { migrations } from './migrations/index.js'
import { loadPreviousKeys, loadSigningKey } from './domain/keys.js'
import { Passwords, defaultPasswordWorkers } from './domain/passwords.js'
import { Tokens } from './domain/tokens.js'
import { Sessions } from './domain/sessions.js'
import { DirectoryReplica } from './domain/directory-replica.js'
import { directoryConsumer } from './consumers/directory.js'
import { authRoutes } from './routes/auth/index.js'
import { userRoutes } from './routes/users/index.js'
import { internalRoutes } from './routes/internal.js'
import { membershipRoutes } from './routes/memberships/index.js'
import { ensureAdmin } from './admin.js'
import { identityConstraints } from './domain/constraints.js'
import './context.js'

export async function buildApp(
  config: IdentityConfig,
  options: { logger?: FastifyServerOptions['logger'] } = {}
): Promise<ServiceApp> {
  const { key, ephemeral } = loadSigningKey(config.ROSTER_JWT_PRIVATE_KEY, config.ROSTER_JWT_PRIVATE_KEY_FILE)
  const previous = loadPreviousKeys(config.ROSTER_JWT_PREVIOUS_KEY_FILES)
  const verifying = [key, ...previous]
  let replica: DirectoryReplica | undefined

  const app = await buildService({
    name: 'identity',
    description: 'Users, profiles, authentication (JWT), sessions and group memberships.',
    config,
    logger: options.logger,
    entities,
    migrations,
    constraints: identityConstraints,
    produces: ['IDENTITY'],
    checks: { password: passwordCheck, 'resident-id': residentIdCheck(config.ROSTER_STRICT_ID_CHECKSUM) },
    signingKey: key,
    resolveKey: staticKeyResolver(new Map(verifying.map((k) => [k.kid, { pem: k.publicPem, alg: k.alg }]))),
    schemas: [ProfileSchema, UserSchema, UserGroupRowSchema],
    consumers: [
      directoryConsumer(
        () => replica!,
        async (em: EntityManager, groupId, userIds) => {
          for (const userId of userIds)
            await app.outbox.emit(em, 'identity.membership.removed', {
              group_id: groupId,
              user_id: userId,
              actor: null
            })
        }
      )
    ],
    async setup(app) {
      if (ephemeral)
        app.log.warn(
          'no ROSTER_JWT_PRIVATE_KEY(_FILE): using a key made for this process only; replicas must share one'
        )
      replica = new DirectoryReplica(config.DIRECTORY_INTERNAL_URL, app.log)
      const lifetimes = {
        accessLifetime: config.ROSTER_ACCESS_TOKEN_LIFETIME,
        refreshLifetime: config.ROSTER_REFRESH_TOKEN_LIFETIME
      }
      const tokens = new Tokens(app.jwt, key, lifetimes, previous)
      app.decorate('identity', {
        config,
        passwords: new Passwords(config.BCRYPT_COST, {
          concurrency: config.PASSWORD_WORKERS || defaultPasswordWorkers(),
          maxWaitMs: config.PASSWORD_QUEUE_WAIT_MS,
          maxQueue: 1024
        }),
        tokens,
        jwks: { keys: verifying.map((k) => k.jwk) },
        sessions: new Sessions(app, tokens, config.ROSTER_ROTATE_REFRESH),
        replica
      })
      // An answer that ended sessions waits for the revocation bucket to have them (see Sessions).
      app.addHook('onSend', app.identity.sessions.beforeSend)
      app.outbox.onKind('revocation', (row) => app.revocations.publish(row.subject, Number(row.payload.exp)))
      if (config.ROSTER_ADMIN_USERNAME && config.ROSTER_ADMIN_PASSWORD) {
        const admin = await ensureAdmin(
          app,
          app.orm.em.fork(),
          app.identity.passwords,
          config.ROSTER_ADMIN_USERNAME,
          config.ROSTER_ADMIN_PASSWORD
        )
        app.log.info({ username: config.ROSTER_ADMIN_USERNAME, created: admin.created }, 'admin account ready')
      }
    },
    routes: [authRoutes, userRoutes, membershipRoutes, internalRoutes]
  })
  return app
}
