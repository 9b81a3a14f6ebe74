import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { EntityManager } from '@mikro-orm/postgresql'
import { Type } from '@sinclair/typebox'
import {
  BlackListCreateBodySchema,
  BlackListPatchBodySchema,
  BlackListQuerySchema,
  BlackListUpdateBodySchema,
  ListHeadersDescription,
  PkParamsSchema,
  type BlackListCreateBody,
  type BlackListEntry,
  publicPath
} from '@roster/contracts'
import {
  FieldErrors,
  LIST_HEADERS,
  fieldErrorsFromAjv,
  isRowId,
  NotFoundError,
  formatTime,
  message,
  pageOf,
  parsePk,
  setPageHeaders,
  transactional
} from '@roster/service-kit'
import type { BlackListRow } from '../../entities/index.js'
import * as blackList from '../../repositories/black-list.js'
import { knownState } from '../../repositories/known-users.js'

const tags = ['black-list']
const entryRef = Type.Ref('BlackListEntry')
const errorRef = Type.Ref('Detail')
const fieldErrors = Type.Ref('FieldErrors')
function renderEntry(row: BlackListRow, timeZone: string): BlackListEntry {
  return {
    id: row.id,
    patient: row.patient,
    join_time: formatTime(row.joinTime, timeZone),
    is_delete: row.isDelete,
    reason: row.reason,
    creator: row.creator
  }
}

/** `reason` as DRF's CharField takes it: not blank (the kit's input rule has trimmed it and refused NUL). */
function cleanReason(reason: string, errors: FieldErrors): string {
  if (reason === '') errors.add('reason', 'blank')
  return reason
}

export const blackListRoutes: FastifyPluginAsyncTypebox = async function blackListRoutes(app) {
  const { config, knownUsers } = app.audit
  const tz = config.ROSTER_TIME_ZONE

  app.get(
    publicPath('listBlackList'),
    {
      schema: {
        tags,
        summary: 'list blacklisted patients',
        description:
          'Entries still in force, newest first (`join_time`, then `id`, descending); `?include_deleted=true` adds removed ' +
          `ones, \`?patient=<id>\` answers whether one patient is listed. ${ListHeadersDescription}`,
        querystring: BlackListQuerySchema,
        response: { 200: { type: 'array', items: entryRef, headers: LIST_HEADERS }, 400: fieldErrors, 401: errorRef }
      }
    },
    async function listEntries(request, reply) {
      const { patient, include_deleted } = request.query
      const page = pageOf(request.query)
      const { rows, total } = await blackList.listBlackList(
        request.server.reads,
        { patient, includeDeleted: include_deleted },
        page
      )
      setPageHeaders(request, reply, total, page)
      return rows.map((row) => renderEntry(row, tz))
    }
  )

  app.post(
    publicPath('createBlackListEntry'),
    {
      config: { access: 'admin' },
      attachValidation: true,
      schema: {
        tags,
        summary: 'blacklist a patient (admin)',
        description: '`patient` must be an existing user that is not already listed; a removed entry does not count.',
        body: BlackListCreateBodySchema,
        response: { 200: entryRef, 400: fieldErrors, 401: errorRef, 403: errorRef, 503: errorRef }
      }
    },
    async function addEntry(request) {
      const { em } = request
      // The body's schema errors and the patient's checks are reported together, as DRF does.
      const errors = request.validationError
        ? // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Fastify types validationError as a plain Error; ajv's errors are on it
          fieldErrorsFromAjv((request.validationError as any).validation ?? [])
        : new FieldErrors()
      const body = request.body as Partial<Record<keyof BlackListCreateBody, unknown>>
      const reason = typeof body?.reason === 'string' && !errors.has('reason') ? cleanReason(body.reason, errors) : ''
      const patient = body?.patient
      if (typeof patient === 'number' && !errors.has('patient')) {
        // An id no user can have (0, beyond the integer column) does not exist either, as DRF says it.
        if (!isRowId(patient)) errors.add('patient', 'does_not_exist', { input: patient })
        else if (!(await knownUsers.exists(em, patient))) errors.add('patient', 'does_not_exist', { input: patient })
        else if (await blackList.isListed(em, patient)) errors.add('patient', 'already_blacklisted')
      }
      errors.throwIfAny()
      // Two admins listing one patient at once: the partial unique index lets one through, and the other
      // gets the same field error as above (the kit's constraint table, `domain/constraints.ts`).
      const entry = await transactional(em, async (t) => {
        // The patient's row, share-locked: a deletion that arrived meanwhile is seen, a later one waits.
        if ((await knownState(t, patient as number, { lock: true })) !== 'live') {
          new FieldErrors().add('patient', 'does_not_exist', { input: patient }).throwIfAny()
        }
        return blackList.addEntry(t, { patient: patient as number, reason, creator: request.caller!.userId })
      })
      return renderEntry(entry, tz)
    }
  )

  app.get(
    publicPath('getBlackListEntry'),
    {
      schema: {
        tags,
        summary: 'one blacklist entry',
        description: 'Removed entries are shown too, with `is_delete: 1`.',
        params: PkParamsSchema,
        response: { 200: entryRef, 401: errorRef, 404: errorRef }
      }
    },
    async function getEntry(request) {
      const entry = await blackList.findEntry(request.em, parsePk(request.params.pk))
      if (!entry) throw new NotFoundError()
      return renderEntry(entry, tz)
    }
  )

  async function changeReason(em: EntityManager, pk: string, reason: string | undefined) {
    const id = parsePk(pk)
    const errors = new FieldErrors()
    const cleaned = reason === undefined ? undefined : cleanReason(reason, errors)
    errors.throwIfAny()
    const entry =
      cleaned === undefined
        ? await blackList.findEntry(em, id)
        : await transactional(em, (t) => blackList.changeReason(t, id, cleaned))
    if (!entry) throw new NotFoundError()
    return renderEntry(entry, tz)
  }

  const updateResponses = { 200: entryRef, 400: fieldErrors, 401: errorRef, 403: errorRef, 404: errorRef }
  app.put(
    publicPath('replaceBlackListEntry'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'replace the reason of an entry (admin)',
        description: 'Only `reason` changes; `patient` and the other fields are ignored.',
        params: PkParamsSchema,
        body: BlackListUpdateBodySchema,
        response: updateResponses
      }
    },
    async function replaceEntry(request) {
      return changeReason(request.em, request.params.pk, request.body.reason)
    }
  )
  app.patch(
    publicPath('updateBlackListEntry'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'change the reason of an entry (admin)',
        description: 'Only `reason` changes; without it nothing does.',
        params: PkParamsSchema,
        body: BlackListPatchBodySchema,
        response: updateResponses
      }
    },
    async function patchEntry(request) {
      return changeReason(request.em, request.params.pk, request.body.reason)
    }
  )

  app.delete(
    publicPath('deleteBlackListEntry'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'remove a patient from the blacklist (admin)',
        description:
          'Soft: `is_delete` becomes 1 and the entry stays (see `include_deleted`). Removing a removed entry changes nothing ' +
          'and answers 200 again. The patient may be listed again afterwards.',
        params: PkParamsSchema,
        response: { 200: errorRef, 401: errorRef, 403: errorRef, 404: errorRef }
      }
    },
    async function removeEntry(request) {
      const id = parsePk(request.params.pk)
      if (!(await blackList.removeEntry(request.em, id))) throw new NotFoundError()
      return { detail: message('deleted', request.lang) }
    }
  )
}
