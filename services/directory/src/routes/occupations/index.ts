import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import {
  ListHeadersDescription,
  OccupationBodySchema,
  OccupationListQuerySchema,
  OccupationPatchBodySchema,
  PkParamsSchema,
  type PkParams,
  type OccupationPatchBody,
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
import { occupationFact, renderOccupation } from '../../domain/occupations.js'
import { cleanName, uniqueNameError } from '../../domain/names.js'
import * as occupations from '../../repositories/occupations.js'

/** What PUT and PATCH share of a request. */
type WriteRequest<B> = Pick<FastifyRequest, 'caller' | 'em'> & { params: PkParams; body: B }

const tags = ['occupations']
const occupationRef = Type.Ref('Occupation')
const errorRef = Type.Ref('Detail')
const fieldErrors = Type.Ref('FieldErrors')

/** Occupations. Reads are for any user, writes for admins; every write emits its event through the outbox. */
export const occupationRoutes: FastifyPluginAsyncTypebox = async function occupationRoutes(app) {
  app.get(
    publicPath('listOccupations'),
    {
      schema: {
        tags,
        summary: 'list occupations',
        description:
          `Id ascending. ${ListHeadersDescription} \`search\` matches a substring of the name, case-insensitively. ` +
          'A new system starts with a catalogue of 40 health occupations (ids 1–40) unless `DIRECTORY_SEED_OCCUPATIONS=false`.',
        querystring: OccupationListQuerySchema,
        response: {
          200: { type: 'array', items: occupationRef, headers: LIST_HEADERS },
          400: fieldErrors,
          401: errorRef
        }
      }
    },
    async function listOccupations(request, reply) {
      const page = pageOf(request.query)
      const { occupations: rows, total } = await occupations.listOccupations(
        request.server.reads,
        request.query.search,
        page
      )
      setPageHeaders(request, reply, total, page)
      return rows.map(renderOccupation)
    }
  )

  app.post(
    publicPath('createOccupation'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'create an occupation (admin)',
        description: '`name` is unique (case-insensitive).',
        body: OccupationBodySchema,
        response: { 200: occupationRef, 400: fieldErrors, 401: errorRef, 403: errorRef }
      }
    },
    async function createOccupation(request) {
      const { em, body } = request
      const errors = new FieldErrors()
      const name = cleanName(errors, body.name)
      errors.throwIfAny()
      if (await occupations.occupationNameTaken(em, name)) throw uniqueNameError()
      const occupation = await transactional(em, async (t) => {
        const [occupation] = await occupations.createOccupations(t, [name])
        await app.outbox.emit(t, 'directory.occupation.created', occupationFact(occupation))
        return occupation
      })
      return renderOccupation(occupation)
    }
  )

  app.get(
    publicPath('getOccupation'),
    {
      schema: {
        tags,
        summary: 'one occupation',
        params: PkParamsSchema,
        response: { 200: occupationRef, 401: errorRef, 404: errorRef }
      }
    },
    async function getOccupation(request) {
      const occupation = await occupations.findOccupation(request.em, parsePk(request.params.pk))
      if (!occupation) throw new NotFoundError()
      return renderOccupation(occupation)
    }
  )

  async function update(request: WriteRequest<OccupationPatchBody>) {
    const id = parsePk(request.params.pk)
    const { em, body } = request
    const errors = new FieldErrors()
    const name = body.name === undefined ? undefined : cleanName(errors, body.name)
    errors.throwIfAny()
    const occupation = await transactional(em, async (t) => {
      const occupation = await occupations.lockOccupation(t, id)
      if (!occupation) throw new NotFoundError()
      if (name !== undefined) {
        if (await occupations.occupationNameTaken(t, name, id)) throw uniqueNameError()
        occupation.name = name
      }
      occupation.version += 1
      await occupations.saveOccupations(t)
      await app.outbox.emit(t, 'directory.occupation.updated', occupationFact(occupation))
      return occupation
    })
    return renderOccupation(occupation)
  }

  const updateResponses = { 200: occupationRef, 400: fieldErrors, 401: errorRef, 403: errorRef, 404: errorRef }
  app.put(
    publicPath('replaceOccupation'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'replace an occupation (admin)',
        params: PkParamsSchema,
        body: OccupationBodySchema,
        response: updateResponses
      }
    },
    (request) => update(request as WriteRequest<OccupationPatchBody>)
  )
  app.patch(
    publicPath('updateOccupation'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'change some fields of an occupation (admin)',
        params: PkParamsSchema,
        body: OccupationPatchBodySchema,
        response: updateResponses
      }
    },
    (request) => update(request as WriteRequest<OccupationPatchBody>)
  )

  app.delete(
    publicPath('deleteOccupation'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'delete an occupation (admin)',
        description: 'Users holding it get `profile.occupation = null` from the identity service on the event.',
        params: PkParamsSchema,
        response: { 200: errorRef, 401: errorRef, 403: errorRef, 404: errorRef }
      }
    },
    async function deleteOccupation(request) {
      const id = parsePk(request.params.pk)
      await transactional(request.em, async (t) => {
        const occupation = await occupations.lockOccupation(t, id)
        if (!occupation) throw new NotFoundError()
        await occupations.deleteOccupation(t, id)
        await app.outbox.emit(t, 'directory.occupation.deleted', { occupation_id: id, version: occupation.version + 1 })
      })
      return { detail: message('deleted', request.lang) }
    }
  )
}
