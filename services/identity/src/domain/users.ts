import type { User } from '@roster/contracts'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { FieldErrors, listUrl, setPageHeaders, type Page } from '@roster/service-kit'
import {
  decodeCursor,
  encodeCursor,
  loadUsers,
  searchUserIds,
  type UserCursor,
  type UserFilter
} from '../repositories/users.js'

/** Every user list: one page of matching users in full, with `X-Total-Count` and `Link` set. */
export async function usersPage(
  request: FastifyRequest,
  reply: FastifyReply,
  filter: UserFilter,
  page: Page,
  timeZone: string
): Promise<User[]> {
  // A cursor says where the page starts, so an offset beside it is a contradiction (looked for in the URL:
  // the parsed query has a default offset).
  if (filter.cursor !== undefined && new URLSearchParams(request.url.split('?')[1] ?? '').has('offset')) {
    new FieldErrors().add('cursor', 'invalid').throwIfAny()
  }
  const { ids, total, more } = await searchUserIds(request.em, filter, page)
  if (filter.cursor === undefined) setPageHeaders(request, reply, total, page)
  else setCursorHeaders(request, reply, total, decodeCursor(filter.cursor), ids, more ?? false)
  return loadUsers(request.em, ids, timeZone)
}

/**
 * A cursor page's headers: `X-Total-Count` as on every list, and `Link` with the cursors of the pages
 * either side. Going forward there is a previous page unless this is the first; `more` says whether the
 * query found one in the direction of travel.
 */
function setCursorHeaders(
  request: FastifyRequest,
  reply: FastifyReply,
  total: number,
  cursor: UserCursor,
  ids: number[],
  more: boolean
): void {
  reply.header('x-total-count', String(total))
  const link = (at: UserCursor, rel: string) =>
    `<${listUrl(request, { cursor: encodeCursor(at), offset: null })}>; rel="${rel}"`
  const backward = cursor.before !== undefined
  const first = ids[0]
  const last = ids[ids.length - 1]
  const links: string[] = []
  const hasNext = backward ? true : more
  const hasPrev = backward ? more : (cursor.after ?? 0) > 0
  // An empty page links to where it stands: before id X, the next page is after X - 1; after X, the previous
  // one is before X + 1.
  if (hasNext) links.push(link({ after: last ?? Math.max(0, (cursor.before ?? 1) - 1) }, 'next'))
  if (hasPrev) links.push(link({ before: first ?? Math.min(2147483647, (cursor.after ?? 0) + 1) }, 'prev'))
  if (links.length > 0) reply.header('link', links.join(', '))
}
