import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { PkParamsSchema } from '@roster/contracts'
import { NotFoundError, parsePk } from '@roster/service-kit'
import { UserEntity } from '../entities/index.js'

/** Read-through for replicas downstream (audit): the same fact `identity.user.*` carries. Not routed by the gateway. */
export const internalRoutes: FastifyPluginAsyncTypebox = async function internalRoutes(app) {
  app.get(
    '/internal/users/:pk',
    { config: { access: 'public' }, schema: { hide: true, params: PkParamsSchema } },
    async function userFact(request) {
      const user = await request.em.findOne(UserEntity, { id: parsePk(request.params.pk) })
      if (!user) throw new NotFoundError()
      return { user_id: user.id, username: user.username, is_staff: user.isStaff, is_active: user.isActive, actor: null }
    }
  )
}
