import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { EntityManager } from '@mikro-orm/postgresql'
import { Type } from '@sinclair/typebox'
import { IdSchema, ListHeadersDescription, PaginationQuerySchema, PkParamsSchema, publicPath } from '@roster/contracts'
import {
  FieldErrors,
  LIST_HEADERS,
  NotFoundError,
  assertSelfOrAdmin,
  message,
  pageOf,
  parsePk,
  setPageHeaders,
  transactional
} from '@roster/service-kit'
import { usersPage } from '../../domain/users.js'
import * as users from '../../repositories/users.js'
import * as memberships from '../../repositories/memberships.js'
import { groupsPage } from '../../repositories/replica.js'

const errorRef = Type.Ref('Detail')
const fieldErrors = Type.Ref('FieldErrors')
const userList = { type: 'array', items: Type.Ref('User'), headers: LIST_HEADERS }

const MembersBodySchema = Type.Object(
  {
    users: Type.Array(IdSchema, { minItems: 1, maxItems: 1000, description: 'ids of the users to add' })
  },
  { title: 'GroupMembersAdd', examples: [{ users: [1, 2] }] }
)
const MemberParamsSchema = Type.Object({
  pk: PkParamsSchema.properties.pk,
  user_pk: Type.String({ pattern: '^[0-9]{1,10}$' })
})

/**
 * Group memberships (owned by identity, as Django's `User.groups` was) and the user lists of groups and
 * occupations: local queries over identity's replica of the directory.
 */
export const membershipRoutes: FastifyPluginAsyncTypebox = async function membershipRoutes(app) {
  const { replica, config } = app.identity
  const tz = config.ROSTER_TIME_ZONE

  async function requireGroup(em: EntityManager, id: number) {
    if (!(await replica.groupExists(em, id))) throw new NotFoundError()
  }

  app.get(
    publicPath('listGroupMembers'),
    {
      config: { access: 'admin' },
      schema: {
        tags: ['groups'],
        summary: "a group's members (admin)",
        description: `Full user representations, id ascending. ${ListHeadersDescription}`,
        params: PkParamsSchema,
        querystring: PaginationQuerySchema,
        response: { 200: userList, 401: errorRef, 403: errorRef, 404: errorRef }
      }
    },
    async function listMembers(request, reply) {
      const id = parsePk(request.params.pk)
      await requireGroup(request.em, id)
      const page = pageOf(request.query)
      return usersPage(request, reply, { memberOf: id }, page, tz)
    }
  )

  app.post(
    publicPath('addGroupMembers'),
    {
      config: { access: 'admin' },
      schema: {
        tags: ['groups'],
        summary: 'add members to a group (admin)',
        description: 'Users already in the group are left as they are. Answers the members, as the member list does.',
        params: PkParamsSchema,
        body: MembersBodySchema,
        response: { 200: userList, 400: fieldErrors, 401: errorRef, 403: errorRef, 404: errorRef }
      }
    },
    async function addMembers(request, reply) {
      const id = parsePk(request.params.pk)
      const { em } = request
      // Fills the replica from the directory on a miss (outside the transaction: it may wait on HTTP).
      await requireGroup(em, id)
      const wanted = [...new Set(request.body.users)]

      await transactional(em, async (t) => {
        // The group's replica row, share-locked: the group's deletion (a tombstone written by the directory
        // consumer, which then drops the memberships) either waits for these rows or is seen here as a 404.
        if (!(await replica.lockGroup(t, id))) throw new NotFoundError()
        // The users, key-share-locked: a user deleted meanwhile is reported, one being deleted waits for this.
        const known = await users.lockAgainstDeletion(t, wanted)
        const errors = new FieldErrors()
        for (const userId of wanted) if (!known.has(userId)) errors.add('users', 'does_not_exist', { input: userId })
        errors.throwIfAny()
        for (const userId of await memberships.add(t, id, wanted)) {
          await app.outbox.emit(t, 'identity.membership.added', {
            group_id: id,
            user_id: userId,
            actor: request.caller!.userId
          })
        }
      })
      const page = pageOf({})
      return usersPage(request, reply, { memberOf: id }, page, tz)
    }
  )

  app.delete(
    publicPath('removeGroupMember'),
    {
      config: { access: 'admin' },
      schema: {
        tags: ['groups'],
        summary: 'remove a member from a group (admin)',
        params: MemberParamsSchema,
        response: { 200: errorRef, 401: errorRef, 403: errorRef, 404: errorRef }
      }
    },
    async function removeMember(request) {
      const groupId = parsePk(request.params.pk)
      const userId = parsePk(request.params.user_pk)
      const { em } = request
      const removed = await transactional(em, async (t) => {
        if (!(await memberships.remove(t, groupId, userId))) return false
        await app.outbox.emit(t, 'identity.membership.removed', {
          group_id: groupId,
          user_id: userId,
          actor: request.caller!.userId
        })
        return true
      })
      if (!removed) throw new NotFoundError()
      return { detail: message('deleted', request.lang) }
    }
  )

  app.get(
    publicPath('listUserGroups'),
    {
      schema: {
        tags: ['users'],
        summary: 'the groups a user belongs to (self or admin)',
        description: `Each group flattened with its profile: \`{id, name, location, contact_phone}\`, id ascending. ${ListHeadersDescription}`,
        params: PkParamsSchema,
        querystring: PaginationQuerySchema,
        response: {
          200: { type: 'array', items: Type.Ref('UserGroupRow'), headers: LIST_HEADERS },
          401: errorRef,
          403: errorRef,
          404: errorRef
        }
      }
    },
    async function groupsOfUser(request, reply) {
      const id = parsePk(request.params.pk)
      assertSelfOrAdmin(request, id)
      const { em } = request
      if (!(await users.exists(em, id))) throw new NotFoundError()
      const page = pageOf(request.query)
      const { rows, total } = await groupsPage(em, await memberships.groupIdsOf(em, id), page)
      setPageHeaders(request, reply, total, page)
      return rows
    }
  )

  app.get(
    publicPath('listOccupationUsers'),
    {
      config: { access: 'admin' },
      schema: {
        tags: ['occupations'],
        summary: 'users whose profile has this occupation (admin)',
        description: `Full user representations, id ascending. ${ListHeadersDescription}`,
        params: PkParamsSchema,
        querystring: PaginationQuerySchema,
        response: { 200: userList, 401: errorRef, 403: errorRef, 404: errorRef }
      }
    },
    async function usersOfOccupation(request, reply) {
      const id = parsePk(request.params.pk)
      if (!(await replica.occupationExists(request.em, id))) throw new NotFoundError()
      const page = pageOf(request.query)
      return usersPage(request, reply, { occupation: id }, page, tz)
    }
  )
}
