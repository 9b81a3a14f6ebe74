import { GroupProfileSchema, GroupSchema, OccupationSchema } from '@roster/contracts'
import { buildService, type ServiceApp } from '@roster/service-kit'
import { directoryConstraints } from './domain/constraints.js'
import type { FastifyServerOptions } from 'fastify'
import type { DirectoryConfig } from './config.js'
import { entities } from './entities/index.js'
import { migrations } from './migrations/index.js'
import { groupRoutes } from './routes/groups/index.js'
import { occupationRoutes } from './routes/occupations/index.js'
import { internalRoutes } from './routes/internal.js'
import { seedOccupationCatalogue } from './domain/catalogue.js'
import './context.js'

/**
 * The directory: groups (with their profiles) and occupations. It knows no users beyond the caller's id
 * from the token (verified with identity's JWKS at IDENTITY_URL), and publishes every change on `DIRECTORY`.
 */
export async function buildApp(
  config: DirectoryConfig,
  options: { logger?: FastifyServerOptions['logger'] } = {}
): Promise<ServiceApp> {
  return buildService({
    name: 'directory',
    description: 'Groups with their profiles, and occupations.',
    config,
    logger: options.logger,
    entities,
    migrations,
    constraints: directoryConstraints,
    produces: ['DIRECTORY'],
    schemas: [GroupProfileSchema, GroupSchema, OccupationSchema],
    async setup(app) {
      app.decorate('directory', { config })
      if (config.DIRECTORY_SEED_OCCUPATIONS) {
        app.addHook('onReady', async () => {
          const added = await seedOccupationCatalogue(app)
          if (added) app.log.info({ added }, 'occupation catalogue filled in')
        })
      }
    },
    routes: [groupRoutes, occupationRoutes, internalRoutes]
  })
}
