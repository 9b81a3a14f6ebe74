import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import {
  GroupBodySchema,
  GroupListQuerySchema,
  GroupPatchBodySchema,
  ListHeadersDescription,
  PkParamsSchema,
  type PkParams,
  type GroupBody,
  type GroupPatchBody,
  publicPath
} from '@roster/contracts'
import {
  FieldErrors,
  LIST_HEADERS,
  NotFoundError,
  message,
  pageOf,
  parsePk,
  setPageHeaders,
  transactional
} from '@roster/service-kit'
import { applyGroupProfile, groupFact, renderGroup } from '../../domain/groups.js'
import { cleanName, uniqueNameError } from '../../domain/names.js'
import * as groups from '../../repositories/groups.js'

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
    publicPath('listGroups'),
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
      const { groups: rows, total } = await groups.listGroups(request.server.reads, request.query.search, page)
      setPageHeaders(request, reply, total, page)
      return rows.map((row) => renderGroup(row.group, row.profile, tz))
    }
  )

  app.post(
    publicPath('createGroup'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'create a group (admin)',
        description:
          "`name` is unique (case-insensitive); `profile` is optional. The caller becomes the profile's `creator`.",
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
      if (await groups.groupNameTaken(em, name)) throw uniqueNameError()

      const { group, profile } = await transactional(em, async (t) => {
        const group = await groups.createGroup(t, name)
        const profile = body.profile
          ? groups.addProfile(
              t,
              group.id,
              applyGroupProfile({ location: '', contactPhone: '' }, body.profile),
              caller.userId
            )
          : null
        await groups.saveGroups(t)
        await app.outbox.emit(t, 'directory.group.created', groupFact(group, profile))
        return { group, profile }
      })
      return renderGroup(group, profile, tz)
    }
  )

  app.get(
    publicPath('getGroup'),
    {
      schema: {
        tags,
        summary: 'one group',
        params: PkParamsSchema,
        response: { 200: groupRef, 401: errorRef, 404: errorRef }
      }
    },
    async function getGroup(request) {
      const found = await groups.findGroup(request.em, parsePk(request.params.pk))
      if (!found) throw new NotFoundError()
      return renderGroup(found.group, found.profile, tz)
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
      const found = await groups.lockGroup(t, id)
      if (!found) throw new NotFoundError()
      if (name !== undefined && (await groups.groupNameTaken(t, name, id))) throw uniqueNameError()
      const { group } = found
      let { profile } = found
      if (name !== undefined) group.name = name
      if (profile) {
        if (input) {
          if (replace) Object.assign(profile, { location: '', contactPhone: '' })
          applyGroupProfile(profile, input)
        }
        profile.modifier = caller.userId
        profile.modifyTime = new Date()
      } else if (input) {
        profile = groups.addProfile(t, id, applyGroupProfile({ location: '', contactPhone: '' }, input), caller.userId)
      }
      group.version += 1
      await groups.saveGroups(t)
      await app.outbox.emit(t, 'directory.group.updated', groupFact(group, profile))
      return { group, profile }
    })
    return renderGroup(group, profile, tz)
  }

  const updateResponses = { 200: groupRef, 400: fieldErrors, 401: errorRef, 403: errorRef, 404: errorRef }
  app.put(
    publicPath('replaceGroup'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'replace a group (admin)',
        description:
          'Replaces `name`; `profile` absent or null keeps the profile, an object replaces it (fields not sent become empty) ' +
          "or creates it. The caller becomes the profile's `modifier`.",
        params: PkParamsSchema,
        body: GroupBodySchema,
        response: updateResponses
      }
    },
    (request) => update(request as WriteRequest<GroupBody>, true)
  )
  app.patch(
    publicPath('updateGroup'),
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
    publicPath('deleteGroup'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'delete a group (admin)',
        description:
          'Deletes the group and its profile; its memberships are dropped by the identity service on the event.',
        params: PkParamsSchema,
        response: { 200: errorRef, 401: errorRef, 403: errorRef, 404: errorRef }
      }
    },
    async function deleteGroup(request) {
      const id = parsePk(request.params.pk)
      await transactional(request.em, async (t) => {
        const found = await groups.lockGroup(t, id)
        if (!found) throw new NotFoundError()
        await groups.deleteGroup(t, id)
        await app.outbox.emit(t, 'directory.group.deleted', { group_id: id, version: found.group.version + 1 })
      })
      return { detail: message('deleted', request.lang) }
    }
  )
}
