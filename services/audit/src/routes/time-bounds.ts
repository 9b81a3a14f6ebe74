import type { FastifyRequest } from 'fastify'
import { FieldErrors } from '@roster/service-kit'

const UNENCODED_OFFSET = /(\d\d:\d\d:\d\d(?:\.\d+)?) (\d\d:?\d\d)$/

/**
 * A `+` in a query string means a space, so `?since=2019-12-14T00:08:16.967+08:00` pasted unencoded
 * arrives as `... 08:00`; the offset's sign is restored before validation rather than refused.
 */
export async function restoreOffsetSign(request: FastifyRequest): Promise<void> {
  const query = request.query as Record<string, unknown>
  for (const key of ['since', 'until']) {
    const value = query[key]
    if (typeof value === 'string') query[key] = value.replace(UNENCODED_OFFSET, '$1+$2')
  }
}

/** The `since` / `until` filters as instants; a value PostgreSQL cannot hold (year 0) is a field error. */
export function timeBounds(query: { since?: string; until?: string }): { since?: Date; until?: Date } {
  const errors = new FieldErrors()
  const parse = (field: 'since' | 'until') => {
    const value = query[field]
    if (value === undefined) return undefined
    const date = new Date(value)
    if (Number.isNaN(date.getTime()) || date.getUTCFullYear() < 1) {
      errors.add(field, 'invalid_datetime')
      return undefined
    }
    return date
  }
  const bounds = { since: parse('since'), until: parse('until') }
  errors.throwIfAny()
  return bounds
}
