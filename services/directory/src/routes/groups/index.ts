import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import type { EntityManager } from '@mikro-orm/postgresql'
import { LockMode } from '@mikro-orm/core'
import { Type } from '@sinclair/typebox'
import {
  GroupBodySchema,
  GroupListQuerySchema,
  GroupPatchBodySchema,
  ListHeadersDescription,
  PkParamsSchema,
  type PkParams,
  type GroupBody,
  type GroupPatchBody
} from '@roster/contracts'
import { FieldErrors, LIST_HEADERS, NotFoundError, message, pageOf, parsePk, setPageHeaders, transactional } from '@roster/service-kit'
import { GroupEntity, GroupProfileEntity, type GroupProfileRow } from '../../entities/index.js'
import { applyGroupProfile, groupFact, listGroups, renderGroup } from '../../domain/groups.js'
import { cleanName, nameTaken, uniqueNameError } from '../../domain/names.js'

/**
 * What PUT and PATCH share of a request. Bodies are cast to their contract types because the type provider
 * (typebox 1.x) infers `unknown` for the contracts' `Nullable` (@sinclair/typebox 0.34 `Type.Unsafe`).
 */
type WriteRequest<B> = Pick<FastifyRequest, 'caller' | 'em'> & { params: PkParams; body: B }

const tags = ['groups']
const groupRef = Type.Ref('Group')
const errorRef = Type.Ref('Detail')
const fieldErrors = Type.Ref('FieldErrors')

/** Groups with their profiles. Reads are for any user, writes for admins; every write emits its event through the outbox. */
export const groupRoutes: FastifyPluginAsyncTypebox = async function groupRoutes(app) {
  const tz = app.directory.config.ROSTER_TIME_ZONE

  app.get(
    '/api/groups/',
    {
      schema: {
        tags,
        summary: 'list groups',
        description: `Id ascending. ${ListHeadersDescription} \`search\` matches a substring of the name, case-insensitively.`,
        querystring: GroupListQuerySchema,
        response: { 200: { type: 'array', items: groupRef, headers: LIST_HEADERS }, 400: fieldErrors, 401: errorRef }
      }
    },
    async function listGroupsRoute(request, reply) {
      const page = pageOf(request.query)
      const { groups, total } = await listGroups(request.em, request.query.search, page, tz)
      setPageHeaders(request, reply, total, page)
      return groups
    }
  )

  app.post(
    '/api/groups/',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'create a group (admin)',
        description: '`name` is unique (case-insensitive); `profile` is optional. The caller becomes the profile\'s `creator`.',
        body: GroupBodySchema,
        response: { 200: groupRef, 400: fieldErrors, 401: errorRef, 403: errorRef }
      }
    },
    async function createGroup(request) {
      const { em } = request
      const body = request.body as GroupBody
      const caller = request.caller!
      const errors = new FieldErrors()
      const name = cleanName(errors, body.name)
      errors.throwIfAny()
      if (await nameTaken(em, 'app_group', name)) throw uniqueNameError()

      const { group, profile } = await transactional(em, async (t) => {
        const group = t.create(GroupEntity, { name, version: 1 })
        await t.flush()
        let profile: GroupProfileRow | null = null
        if (body.profile) {
          const now = new Date()
          const fields = applyGroupProfile({ location: '', contactPhone: '' }, body.profile)
          profile = t.create(GroupProfileEntity, {
            ...fields,
            group: group.id,
            creator: caller.userId,
            modifier: null,
            createTime: now,
            modifyTime: now
          } as GroupProfileRow)
          await t.flush()
        }
        await app.outbox.emit(t, 'directory.group.created', groupFact(group, profile))
        return { group, profile }
      })
      return renderGroup(group, profile, tz)
    }
  )

  app.get(
    '/api/groups/:pk/',
    {
      schema: {
        tags,
        summary: 'one group',
        params: PkParamsSchema,
        response: { 200: groupRef, 401: errorRef, 404: errorRef }
      }
    },
    async function getGroup(request) {
      const id = parsePk(request.params.pk)
      const group = await request.em.findOne(GroupEntity, { id })
      if (!group) throw new NotFoundError()
      const profile = await request.em.findOne(GroupProfileEntity, { group: id })
      return renderGroup(group, profile, tz)
    }
  )

  async function update(request: WriteRequest<GroupPatchBody>, replace: boolean) {
    const id = parsePk(request.params.pk)
    const caller = request.caller!
    const { em, body } = request
    const errors = new FieldErrors()
    const name = body.name === undefined ? undefined : cleanName(errors, body.name)
    errors.throwIfAny()
    const input = body.profile ?? undefined

    const { group, profile } = await transactional(em, async (t) => {
      // The row lock orders concurrent writers, so versions and their events go out in the order of the changes.
      const group = await t.findOne(GroupEntity, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE })
      if (!group) throw new NotFoundError()
      if (name !== undefined && (await nameTaken(t, 'app_group', name, id))) throw uniqueNameError()
      let profile = await t.findOne(GroupProfileEntity, { group: id })
      const now = new Date()
      if (name !== undefined) group.name = name
      if (profile) {
        if (input) {
          if (replace) Object.assign(profile, { location: '', contactPhone: '' })
          applyGroupProfile(profile, input)
        }
        profile.modifier = caller.userId
        profile.modifyTime = now
      } else if (input) {
        const fields = applyGroupProfile({ location: '', contactPhone: '' }, input)
        profile = t.create(GroupProfileEntity, {
          ...fields,
          group: id,
          creator: caller.userId,
          modifier: null,
          createTime: now,
          modifyTime: now
        } as GroupProfileRow)
      }
      group.version += 1
      await t.flush()
      await app.outbox.emit(t, 'directory.group.updated', groupFact(group, profile))
      return { group, profile }
    })
    return renderGroup(group, profile, tz)
  }

  const updateResponses = { 200: groupRef, 400: fieldErrors, 401: errorRef, 403: errorRef, 404: errorRef }
  app.put(
    '/api/groups/:pk/',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'replace a group (admin)',
        description:
          'Replaces `name`; `profile` absent or null keeps the profile, an object replaces it (fields not sent become empty) ' +
          'or creates it. The caller becomes the profile\'s `modifier`.',
        params: PkParamsSchema,
        body: GroupBodySchema,
        response: updateResponses
      }
    },
    (request) => update(request as WriteRequest<GroupBody>, true)
  )
  app.patch(
    '/api/groups/:pk/',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'change some fields of a group (admin)',
        description: 'Only the fields sent change, profile fields included; a profile is created when there is none.',
        params: PkParamsSchema,
        body: GroupPatchBodySchema,
        response: updateResponses
      }
    },
    (request) => update(request as WriteRequest<GroupPatchBody>, false)
  )

  app.delete(
    '/api/groups/:pk/',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'delete a group (admin)',
        description: 'Deletes the group and its profile; its memberships are dropped by the identity service on the event.',
        params: PkParamsSchema,
        response: { 200: errorRef, 401: errorRef, 403: errorRef, 404: errorRef }
      }
    },
    async function deleteGroup(request) {
      const id = parsePk(request.params.pk)
      await transactional(request.em, async (t) => {
        const group = await t.findOne(GroupEntity, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE })
        if (!group) throw new NotFoundError()
        // The profile goes with the row (on delete cascade).
        await t.nativeDelete(GroupEntity, { id })
        await app.outbox.emit(t, 'directory.group.deleted', { group_id: id, version: group.version + 1 })
      })
      return { detail: message('deleted', request.lang) }
    }
  )
}
