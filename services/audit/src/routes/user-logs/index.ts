import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import {
  ListHeadersDescription,
  PkParamsSchema,
  UserLogListQuerySchema,
  UserLogsOfUserQuerySchema,
  publicPath
} from '@roster/contracts'
import {
  FieldErrors,
  LIST_HEADERS,
  NotFoundError,
  PermissionDeniedError,
  assertSelfOrAdmin,
  pageOf,
  parsePk,
  setPageHeaders
} from '@roster/service-kit'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { renderUserLog } from '../../domain/user-logs.js'
import {
  decodeCursor,
  encodeCursor,
  findUserLog,
  listUserLogs,
  type LogCursor,
  type LogFilter
} from '../../repositories/user-logs.js'
import { restoreOffsetSign, timeBounds } from '../time-bounds.js'

const tags = ['user-logs']
const logRef = Type.Ref('UserLog')
const errorRef = Type.Ref('Detail')
const fieldErrors = Type.Ref('FieldErrors')
const listOfLogs = { type: 'array', items: logRef, headers: LIST_HEADERS } as const

const LIST_RULES =
  'Newest first (`operate_time`, then `id`, descending). Logins (0) and logouts (1) are listed; failed attempts (2) ' +
  'only with `?operation=2`. `since` / `until` are inclusive RFC 3339 times (send `+` as `%2B`). ' +
  'Deep pages: `limit` / `offset` as everywhere, or `?cursor=` (empty) and then the `rel="next"` link of each page, ' +
  'which carries an opaque ' +
  '`cursor` (no `prev` link then); a page by cursor costs the same at any depth.'

/**
 * One page of a log list with its headers: by `offset`, or, when `cursor` is sent, after that position with a
 * `rel="next"` link carrying the next page's cursor. A cursor this service did not make is a field error.
 */
async function logPage(
  request: FastifyRequest,
  reply: FastifyReply,
  path: string,
  filter: LogFilter,
  query: { limit?: number; offset?: number; cursor?: string }
) {
  const page = pageOf(query)
  let cursor: LogCursor | 'top' | undefined
  if (query.cursor !== undefined) {
    const decoded = decodeCursor(query.cursor)
    if (decoded === null) new FieldErrors().add('cursor', 'invalid').throwIfAny()
    cursor = decoded ?? undefined
  }
  const { rows, total, next } = await listUserLogs(request.server.reads, filter, page, cursor)
  if (cursor === undefined) {
    setPageHeaders(request, reply, total, page)
  } else {
    reply.header('x-total-count', String(total))
    if (next) {
      const q = request.url.indexOf('?')
      const params = new URLSearchParams(q === -1 ? '' : request.url.slice(q + 1))
      params.delete('offset')
      params.set('limit', String(page.limit))
      params.set('cursor', encodeCursor(next))
      reply.header('link', `<${path}?${params.toString()}>; rel="next"`)
    }
  }
  return rows
}

/** User logs are read-only: they are written by the `IDENTITY` consumer alone. */
export const userLogRoutes: FastifyPluginAsyncTypebox = async function userLogRoutes(app) {
  const { config, knownUsers } = app.audit
  const tz = config.ROSTER_TIME_ZONE

  app.get(
    publicPath('listUserLogs'),
    {
      config: { access: 'admin' },
      preValidation: restoreOffsetSign,
      schema: {
        tags,
        summary: 'list login and logout records (admin)',
        description: `${LIST_RULES} ${ListHeadersDescription}`,
        querystring: UserLogListQuerySchema,
        response: { 200: listOfLogs, 400: fieldErrors, 401: errorRef, 403: errorRef }
      }
    },
    async function listLogs(request, reply) {
      const { user, operation } = request.query
      const rows = await logPage(
        request,
        reply,
        '/api/user-logs/',
        { user, operation, ...timeBounds(request.query) },
        request.query
      )
      return rows.map((row) => renderUserLog(row, tz))
    }
  )

  app.get(
    publicPath('getUserLog'),
    {
      schema: {
        tags,
        summary: 'one record (admin, or the user it belongs to)',
        description: 'Another user gets 403 whether or not the record exists.',
        params: PkParamsSchema,
        response: { 200: logRef, 401: errorRef, 403: errorRef, 404: errorRef }
      }
    },
    async function getLog(request) {
      const id = parsePk(request.params.pk)
      const caller = request.caller!
      const row = await findUserLog(request.em, id)
      if (!caller.isStaff && (!row || row.user !== caller.userId)) throw new PermissionDeniedError()
      if (!row) throw new NotFoundError()
      return renderUserLog(row, tz)
    }
  )

  app.get(
    publicPath('listUserLogsOfUser'),
    {
      preValidation: restoreOffsetSign,
      schema: {
        tags,
        summary: "one user's login and logout records (self or admin)",
        description: `${LIST_RULES} ${ListHeadersDescription} An unknown user is 404; a deleted user's history stays readable by admins.`,
        params: PkParamsSchema,
        querystring: UserLogsOfUserQuerySchema,
        response: { 200: listOfLogs, 400: fieldErrors, 401: errorRef, 403: errorRef, 404: errorRef, 503: errorRef }
      }
    },
    async function listLogsOfUser(request, reply) {
      const id = parsePk(request.params.pk)
      const caller = assertSelfOrAdmin(request, id)
      const bounds = timeBounds(request.query)
      // The caller's own id needs no look-up: its token proves the user exists.
      if (caller.userId !== id && !(await knownUsers.hasHistory(request.em, id))) throw new NotFoundError()
      const filter = { user: id, operation: request.query.operation, ...bounds }
      const rows = await logPage(request, reply, `/api/users/${id}/user-logs/`, filter, request.query)
      return rows.map((row) => renderUserLog(row, tz))
    }
  )
}
