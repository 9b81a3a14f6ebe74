import type { FastifyBaseLogger } from 'fastify'
import { ApiError } from './errors.js'

/**
 * Asks the service that owns a fact for it over internal HTTP (`baseUrl` is the owner's internal listener,
 * a `*_INTERNAL_URL`: `/internal/*` routes exist nowhere else), when a replica has not heard of it yet.
 * Answers the JSON body, or null when the owner says 404 (or none is configured). Anything else
 * (unreachable, too slow, an error status) is a 503 for the client, never a false "does not exist".
 */
export async function readThrough<T>(
  baseUrl: string,
  path: string,
  options: { timeoutMs: number; log: FastifyBaseLogger }
): Promise<T | null> {
  if (!baseUrl) return null
  let response: Response
  try {
    response = await fetch(new URL(path, baseUrl), { signal: AbortSignal.timeout(options.timeoutMs) })
  } catch (error) {
    options.log.warn({ err: error, path }, 'read-through failed')
    throw new ApiError(503, 'service_unavailable', {}, 'service_unavailable')
  }
  if (response.ok) return (await response.json()) as T
  await response.body?.cancel()
  if (response.status === 404) return null
  options.log.warn({ status: response.status, path }, 'read-through answered an error')
  throw new ApiError(503, 'service_unavailable', {}, 'service_unavailable')
}
