import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { PkParamsSchema } from '@roster/contracts'
import { NotFoundError, parsePk } from '@roster/service-kit'

/** Read-through for replicas downstream (audit): the same fact `identity.user.*` carries. Internal listener only. */
export const internalRoutes: FastifyPluginAsyncTypebox = async function internalRoutes(app) {
  app.get(
    '/internal/users/:pk',
    { config: { access: 'public', internal: true }, schema: { hide: true, params: PkParamsSchema } },
    async function userFact(request) {
      const [user] = await request.em
        .getConnection()
        .execute<{ user_id: number; username: string; is_staff: boolean; is_active: boolean; version: number }[]>(
          'select id as user_id, username, is_staff, is_active, version from app_user where id = ?',
          [parsePk(request.params.pk)]
        )
      if (!user) throw new NotFoundError()
      return { ...user, actor: null }
    }
  )
}
