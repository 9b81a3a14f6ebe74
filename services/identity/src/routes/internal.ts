import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { PkParamsSchema, internalPath } from '@roster/contracts'
import { NotFoundError, parsePk } from '@roster/service-kit'
import { currentFact } from '../repositories/users.js'

/** Read-through for replicas downstream (audit): the same fact `identity.user.*` carries. Internal listener only. */
export const internalRoutes: FastifyPluginAsyncTypebox = async function internalRoutes(app) {
  app.get(
    internalPath('userFact'),
    { config: { access: 'public', internal: true }, schema: { hide: true, params: PkParamsSchema } },
    async function userFact(request) {
      const fact = await currentFact(request.em, parsePk(request.params.pk))
      if (!fact) throw new NotFoundError()
      return fact
    }
  )
}
