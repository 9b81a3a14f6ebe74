import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance } from 'fastify'
import { FieldErrors, NotFoundError, ValidationError } from '../errors.js'
import { normalizeBody, normalizeText } from '../validation.js'
import { JsonParseError } from './errors.js'

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH'])

/**
 * A query integer as DRF's `IntegerField` reads one (`7`, `+7`, `007`, `7.0`). Ajv's coercion would also take
 * `0x7`, `7e0` and `0b111` (path ids already refuse them: `isRowId`); here they are `400`, as `abc` is.
 */
const DECIMAL_INTEGER = /^[+-]?[0-9]+(?:\.0*)?$/

/** A query boolean as django-filter's `BooleanWidget` reads one: `true`/`false`/`1`/`0`, any case. */
const BOOLEANS: Record<string, string> = { true: 'true', '1': 'true', false: 'false', '0': 'false' }

/** The query parameters of a route that are integers, and those that are booleans (from its schema). */
interface QueryTypes {
  integers: string[]
  booleans: string[]
}
const QUERY_TYPES = Symbol('roster.queryTypes')

function queryTypes(schema: unknown): QueryTypes | undefined {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> } | undefined)?.properties
  if (!properties) return undefined
  const named = (type: string) =>
    Object.keys(properties).filter((name) => {
      const declared = properties[name]?.type
      return declared === type || (Array.isArray(declared) && declared.includes(type))
    })
  const types = { integers: named('integer'), booleans: named('boolean') }
  return types.integers.length + types.booleans.length > 0 ? types : undefined
}

/** Each value of a query parameter (a repeated one is an array). */
function eachValue(value: unknown, fn: (text: string) => string | null): unknown {
  if (typeof value === 'string') return fn(value) ?? value
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'string' ? (fn(v) ?? v) : v))
  return value
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/**
 * The one input rule of every service, applied where input arrives (the rule itself is `validation.ts`):
 * JSON bodies only (strict UTF-8; trimmed, no NUL, lone surrogates, Infinity or deep nesting, field by field),
 * and the same for query strings and path parameters. The gateway does not register it: it passes bodies on
 * as they are.
 */
export const inputPlugin = fp(
  async function input(app: FastifyInstance) {
    // JSON only: any other content type is a 415.
    app.removeContentTypeParser('text/plain')
    const jsonParser = app.getDefaultJsonParser('error', 'error')
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, raw, done) => {
      // JSON is UTF-8 (RFC 8259): bytes that are not are refused, never stored as U+FFFD.
      let text: string
      try {
        text = strictUtf8.decode(raw as Buffer)
      } catch {
        return done(new JsonParseError('the body is not valid UTF-8') as unknown as FastifyError, undefined)
      }
      if (text.trim() === '') return done(null, {})
      return jsonParser(request, text, (error, parsed) => {
        if (error) return done(error, undefined)
        // One rule for every service: trim, refuse NUL, lone surrogates, Infinity and deep nesting, field by field.
        const errors = new FieldErrors()
        const body = normalizeBody(parsed, errors)
        return errors.empty
          ? done(null, body)
          : done(new ValidationError(errors.tree) as unknown as FastifyError, undefined)
      })
    })
    app.addHook('onRoute', (route) => {
      const types = queryTypes((route.schema as { querystring?: unknown } | undefined)?.querystring)
      if (types) route.config = { ...route.config, [QUERY_TYPES]: types } as typeof route.config
    })
    // Query strings and path parameters follow the same rule; a bad path parameter names nothing: 404. A
    // body-carrying request without a body is validated as `{}`, as DRF does. (Callback hooks, not async
    // ones: they run on every request, and a promise per hook is a measurable part of a cheap one.)
    app.addHook('preValidation', (request, _reply, done) => {
      let badParam = false
      request.params = normalizeText((request.params ?? {}) as Record<string, unknown>, () => (badParam = true), false)
      if (badParam) return done(new NotFoundError())
      const errors = new FieldErrors()
      const query = normalizeText((request.query ?? {}) as Record<string, unknown>, (name, key) =>
        errors.add(name, key)
      )
      const types = (request.routeOptions.config as { [QUERY_TYPES]?: QueryTypes })[QUERY_TYPES]
      if (types) {
        // A spelling refused here is handed to validation as text no coercion takes, so that it is reported
        // with every other bad field at once (`请填写合法的整数值。`).
        for (const name of types.integers)
          if (name in query) query[name] = eachValue(query[name], (text) => (DECIMAL_INTEGER.test(text) ? null : 'x'))
        for (const name of types.booleans)
          if (name in query) query[name] = eachValue(query[name], (text) => BOOLEANS[text.toLowerCase()] ?? null)
      }
      request.query = query
      if (!errors.empty) return done(new ValidationError(errors.tree))
      if (request.body === undefined && BODY_METHODS.has(request.method)) request.body = {}
      done()
    })
    // Ajv coerces `?n=-1e400` or `?n=Infinity` to a number that passes `integer`: refused once coerced.
    app.addHook('preHandler', (request, _reply, done) => {
      const query = (request.query ?? {}) as Record<string, unknown>
      let errors: FieldErrors | undefined
      for (const name in query) {
        const value = query[name]
        if (typeof value === 'number' && !Number.isFinite(value))
          (errors ??= new FieldErrors()).add(name, 'invalid_number')
      }
      done(errors === undefined ? undefined : new ValidationError(errors.tree))
    })
  },
  { name: 'roster-input', dependencies: ['roster-errors'] }
)
