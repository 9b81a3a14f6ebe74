import type { FastifyBaseLogger } from 'fastify'
import type { EventData, EventSubject } from '@roster/contracts'
import { ApiError } from './errors.js'
import { isEventData } from './contract.js'

/**
 * Asks the service that owns a fact for it over internal HTTP (`baseUrl` is the owner's internal listener,
 * a `*_INTERNAL_URL`: `/internal/*` routes exist nowhere else), when a replica has not heard of it yet.
 * The answer must be what an event of `carries` carries, checked like every event a consumer receives
 * (`isEventData`) and about `id`. Answers the fact, or null when the owner says 404 (or none is configured). Anything else
 * (unreachable, too slow, an error status, an answer that is not JSON or not the contract's fact) is a 503
 * for the client, never a false "does not exist"; a refused answer is logged without its content.
 */
export async function readThrough<S extends EventSubject>(
  baseUrl: string,
  path: string,
  carries: S,
  options: { timeoutMs: number; log: FastifyBaseLogger; id: number }
): Promise<EventData<S> | null> {
  if (!baseUrl) return null
  let response: Response
  let body: unknown
  try {
    response = await fetch(new URL(path, baseUrl), { signal: AbortSignal.timeout(options.timeoutMs) })
    if (response.ok) body = await response.json()
    else await response.body?.cancel()
  } catch (error) {
    // a body that is not JSON is refused like a malformed event; anything else is the owner's trouble
    if (error instanceof SyntaxError) refused(options.log, path, carries, 'answer is not JSON')
    else options.log.warn({ err: error, path }, 'read-through failed')
    throw unavailable()
  }
  if (response.status === 404) return null
  if (!response.ok) {
    options.log.warn({ status: response.status, path }, 'read-through answered an error')
    throw unavailable()
  }
  if (isEventData(carries, body)) {
    // The fact asked for, not another one: `directory.group.created` names its group in `group_id`.
    if ((body as Record<string, unknown>)[`${carries.split('.')[1]}_id`] === options.id) return body
    refused(options.log, path, carries, 'answer is about another id')
    throw unavailable()
  }
  refused(options.log, path, carries, 'answer does not match the contract')
  throw unavailable()
}

/** Logged like a parked event: what was asked and why the answer was refused, never the answer itself. */
function refused(log: FastifyBaseLogger, path: string, carries: EventSubject, reason: string): void {
  log.error({ path, carries, reason }, 'read-through answer refused')
}

function unavailable(): ApiError {
  return new ApiError(503, 'service_unavailable', {}, 'service_unavailable')
}
