import { METHODS as NODE_METHODS } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import { ApiError, NotFoundError, PayloadTooLargeError, ValidationError } from '../errors.js'
import { message, negotiateLanguage, type Lang } from '../messages.js'
import { fieldErrorsFromAjv } from '../validation.js'
import { constraintError, type ConstraintTable } from '../sql.js'

declare module 'fastify' {
  interface FastifyRequest {
    lang: Lang
  }
}

/** The methods the API's routes use. */
const API_METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])

/**
 * The methods a known `/api` path answers `405` for when it lacks them: every method Node's parser takes
 * (`TRACE`, `PROPFIND`, `QUERY`, …) but `HEAD` (a `GET` path answers it), `OPTIONS` (CORS preflights) and
 * `CONNECT` (refused before routing, `refuseConnect`). A method no parser knows is a `400` (`clientErrorHandler`).
 */
const METHODS = NODE_METHODS.filter((m) => m !== 'HEAD' && m !== 'OPTIONS' && m !== 'CONNECT') as HTTPMethods[]

function send(request: FastifyRequest, reply: FastifyReply, error: ApiError) {
  const level = error.statusCode >= 500 ? 'error' : 'info'
  request.log[level]({ status: error.statusCode, key: error.key }, 'request failed')
  if (error.statusCode === 401) reply.header('www-authenticate', 'Bearer realm="api"')
  // Every 503 says when to try again, as the OpenAPI document promises (a dependency down is short-lived).
  if (error.statusCode === 503) reply.header('retry-after', '1')
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value)
  return reply.code(error.statusCode).send(error.body(request.lang))
}

/** Maps what Fastify itself throws (parsing, validation, limits) onto the API's errors. */
function toApiError(error: FastifyError, request: FastifyRequest, constraints?: ConstraintTable): ApiError | null {
  if (error instanceof ApiError) return error
  // Races: a unique or foreign-key violation, a deadlock or serialization failure left after retries.
  const raced = constraintError(error, constraints)
  if (raced) return raced
  if (error.validation) {
    if (error.validationContext === 'params') return new NotFoundError()
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Fastify's FastifySchemaValidationError and ajv's ErrorObject differ only in optional fields
    return new ValidationError(fieldErrorsFromAjv(error.validation as any).tree)
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayloadTooLargeError()
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'unsupported_media_type', { media_type: request.headers['content-type'] ?? '' })
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new JsonParseError('bad Content-Length')
  }
  if (error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new JsonParseError(error.message)
  }
  if (isUnavailable(error)) return new ApiError(503, 'service_unavailable')
  if (BAD_VALUE_CODES.has(String((error as { code?: unknown }).code)))
    return new ValidationError({ non_field_errors: [{ key: 'invalid' }] })
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return new ApiError(error.statusCode, 'invalid')
  }
  return null
}

// The database (or another dependency) cannot be reached: a 503 the client may retry, not a 500.
// Values PostgreSQL refuses (NUL in text, bad encoding, a number beyond the column) are the client's fault: 400.
const BAD_VALUE_CODES = new Set(['22021', '22P05', '22003'])
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08006'
])

function isUnavailable(error: FastifyError): boolean {
  const code = String((error as { code?: unknown }).code ?? '')
  return (
    UNAVAILABLE_CODES.has(code) || /Timeout acquiring a connection|Connection terminated/i.test(error.message ?? '')
  )
}

/** A body that is not JSON: `detail` as DRF says it, and `non_field_errors` for the field-error shape. */
/** A body that is not JSON (or not UTF-8): 400 with the reason, in `detail` and `non_field_errors`. */
export class JsonParseError extends ApiError {
  constructor(private readonly reason: string) {
    super(400, 'parse_error', { reason })
  }

  override body(lang: Lang) {
    const text = message('parse_error', lang, { reason: this.reason })
    return { detail: text, non_field_errors: [text] }
  }
}

/**
 * Every error leaves the service in the DRF shape of the API contract, in the client's language;
 * 4xx are logged at info and 5xx at error, each with the request id. Also: `405` for a known path with
 * another method.
 */
export const errorsPlugin = fp(
  async function errors(app: FastifyInstance, options: { constraints?: ConstraintTable } = {}) {
    // Read where an answer is worded (errors, mostly), not by a hook on every request.
    app.decorateRequest('lang', {
      getter(this: FastifyRequest) {
        return negotiateLanguage(this.headers['accept-language'])
      }
    })

    app.setErrorHandler(function handleError(error: FastifyError, request, reply) {
      const apiError = toApiError(error, request, options.constraints)
      if (apiError) return send(request, reply, apiError)
      request.log.error({ err: error }, 'unhandled error')
      return reply.code(500).send({ detail: message('server_error', request.lang) })
    })

    app.setNotFoundHandler(function notFound(request, reply) {
      return send(request, reply, new NotFoundError())
    })

    // Fastify answers 404 for a known path with another method; the API wants 405.
    const methodsByUrl = new Map<string, Set<string>>()
    app.addHook('onRoute', (route) => {
      if (route.url.includes('*')) return
      const methods = Array.isArray(route.method) ? route.method : [route.method]
      const set = methodsByUrl.get(route.url) ?? new Set<string>()
      methods.forEach((m) => set.add(m))
      methodsByUrl.set(route.url, set)
    })
    app.decorate('registerMethodNotAllowed', function registerMethodNotAllowed(this: FastifyInstance) {
      // Fastify routes only the methods it was told of (GET, POST, … TRACE, QUERY). Those the API does not use
      // are made known as methods without a body: their 405 reads nothing (a QUERY was a 400 for its body).
      for (const method of METHODS)
        if (!API_METHODS.has(method)) this.addHttpMethod(method, { hasBody: false, overrideExisting: true })
      for (const [url, known] of methodsByUrl) {
        if (!url.startsWith('/api/')) continue
        const missing = METHODS.filter((m) => !known.has(m) && !(m === 'HEAD' && known.has('GET')))
        if (missing.length === 0) continue
        const allow = [...known].filter((m) => m !== 'HEAD').join(', ')
        this.route({
          method: missing,
          url,
          schema: { hide: true },
          config: { access: 'public', methodNotAllowed: true },
          handler: async (request, reply) => {
            reply.header('allow', allow)
            return send(request, reply, new ApiError(405, 'method_not_allowed', { method: request.method }))
          }
        })
      }
    })
  },
  { name: 'roster-errors' }
)

declare module 'fastify' {
  interface FastifyInstance {
    /** Adds `405` answers for the methods a known `/api` path lacks; call once after all routes. */
    registerMethodNotAllowed(): void
  }
}
