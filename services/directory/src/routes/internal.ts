import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { EVENTS, PkParamsSchema, internalPath } from '@roster/contracts'
import { NotFoundError, parsePk } from '@roster/service-kit'
import { findGroup } from '../repositories/groups.js'
import { findOccupation } from '../repositories/occupations.js'
import { groupFact } from '../domain/groups.js'
import { occupationFact } from '../domain/occupations.js'

/**
 * Read-through for replicas downstream (identity): the same fact `directory.*` events carry, or 404.
 * Paths are contracts' `INTERNAL_PATHS`; served only on the internal listener (INTERNAL_PORT), never the public one.
 */
export const internalRoutes: FastifyPluginAsyncTypebox = async function internalRoutes(app) {
  const notFound = Type.Ref('Detail')

  app.get(
    internalPath('occupationFact'),
    {
      config: { access: 'public', internal: true },
      schema: {
        hide: true,
        params: PkParamsSchema,
        response: { 200: EVENTS['directory.occupation.created'], 404: notFound }
      }
    },
    async function occupationFactRoute(request) {
      const occupation = await findOccupation(request.em, parsePk(request.params.pk))
      if (!occupation) throw new NotFoundError()
      return occupationFact(occupation)
    }
  )

  app.get(
    internalPath('groupFact'),
    {
      config: { access: 'public', internal: true },
      schema: {
        hide: true,
        params: PkParamsSchema,
        response: { 200: EVENTS['directory.group.created'], 404: notFound }
      }
    },
    async function groupFactRoute(request) {
      const found = await findGroup(request.em, parsePk(request.params.pk))
      if (!found) throw new NotFoundError()
      return groupFact(found.group, found.profile)
    }
  )
}
