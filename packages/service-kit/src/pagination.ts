import { NotFoundError } from './errors.js'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { PaginationQuery } from '@roster/contracts'

export interface Page {
  limit: number
  offset: number
}

export function pageOf(query: PaginationQuery): Page {
  return { limit: query.limit ?? 100, offset: query.offset ?? 0 }
}

// Characters kept as they are in the path of a link; anything else (`<`, `>`, `"`, spaces, controls) is
// percent-encoded so that it cannot break out of the `<...>` of the header.
const PATH_UNSAFE = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/g

/**
 * A page's link as a relative reference (`/api/users/?limit=100&offset=200`), never built from `Host`
 * (which the client chooses). The path is the one requested, with repeated slashes collapsed, so it
 * cannot turn into a network-path reference (`//evil.example/...`).
 */
function pageUrl(request: FastifyRequest, limit: number, offset: number): string {
  return listUrl(request, { limit: String(limit), offset: String(offset) })
}

/** The requested list's link with some query parameters set (a string) or removed (`null`); see pageUrl. */
export function listUrl(request: FastifyRequest, set: Record<string, string | null>): string {
  const raw = request.url
  const q = raw.indexOf('?')
  const path = `/${(q === -1 ? raw : raw.slice(0, q)).replace(/^\/+/, '').replace(/\/{2,}/g, '/')}`.replace(
    PATH_UNSAFE,
    (c) => encodeURIComponent(c)
  )
  const params = new URLSearchParams(q === -1 ? '' : raw.slice(q + 1))
  for (const [name, value] of Object.entries(set)) {
    if (value === null) params.delete(name)
    else params.set(name, value)
  }
  return `${path}?${params.toString()}`
}

/** Sets `X-Total-Count` and an RFC 8288 `Link` (next / prev) for a bare-array list answer. */
export function setPageHeaders(request: FastifyRequest, reply: FastifyReply, total: number, page: Page): void {
  reply.header('x-total-count', String(total))
  const links: string[] = []
  if (page.offset + page.limit < total)
    links.push(`<${pageUrl(request, page.limit, page.offset + page.limit)}>; rel="next"`)
  if (page.offset > 0) {
    links.push(`<${pageUrl(request, page.limit, Math.max(0, page.offset - page.limit))}>; rel="prev"`)
  }
  if (links.length > 0) reply.header('link', links.join(', '))
}

export const LIST_HEADERS = {
  'x-total-count': { type: 'integer', description: 'number of matching rows' },
  link: { type: 'string', description: 'RFC 8288 links to the next and previous pages' }
}

/** A value a row id (a `serial` primary key) can hold: a positive 32-bit integer. */
export function isRowId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= 2147483647
}

/** A path id, or 404 for anything that is not a positive 32-bit integer. */
export function parsePk(value: string): number {
  const id = Number(value)
  if (!/^[0-9]{1,10}$/.test(value) || !isRowId(id)) throw new NotFoundError()
  return id
}
