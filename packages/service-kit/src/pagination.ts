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

function pageUrl(request: FastifyRequest, limit: number, offset: number): string {
  const url = new URL(request.url, `${request.protocol}://${request.host}`)
  url.searchParams.set('limit', String(limit))
  url.searchParams.set('offset', String(offset))
  return url.toString()
}

/** Sets `X-Total-Count` and an RFC 8288 `Link` (next / prev) for a bare-array list answer. */
export function setPageHeaders(request: FastifyRequest, reply: FastifyReply, total: number, page: Page): void {
  reply.header('x-total-count', String(total))
  const links: string[] = []
  if (page.offset + page.limit < total) links.push(`<${pageUrl(request, page.limit, page.offset + page.limit)}>; rel="next"`)
  if (page.offset > 0) {
    links.push(`<${pageUrl(request, page.limit, Math.max(0, page.offset - page.limit))}>; rel="prev"`)
  }
  if (links.length > 0) reply.header('link', links.join(', '))
}

export const LIST_HEADERS = {
  'x-total-count': { type: 'integer', description: 'number of matching rows' },
  link: { type: 'string', description: 'RFC 8288 links to the next and previous pages' }
}

/** A path id, or 404 for anything that is not a positive 32-bit integer. */
export function parsePk(value: string): number {
  const id = Number(value)
  if (!/^[0-9]{1,10}$/.test(value) || !Number.isSafeInteger(id) || id < 1 || id > 2147483647) throw new NotFoundError()
  return id
}
