import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance } from 'fastify'
import { FieldErrors, NotFoundError, ValidationError } from '../errors.js'
import { normalizeBody, normalizeText } from '../validation.js'
import { JsonParseError } from './errors.js'

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH'])

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
    // Query strings and path parameters follow the same rule; a bad path parameter names nothing: 404. A
    // body-carrying request without a body is validated as `{}`, as DRF does. (Callback hooks, not async
    // ones: they run on every request, and a promise per hook is a measurable part of a cheap one.)
    app.addHook('preValidation', (request, _reply, done) => {
      let badParam = false
      request.params = normalizeText((request.params ?? {}) as Record<string, unknown>, () => (badParam = true), false)
      if (badParam) return done(new NotFoundError())
      const errors = new FieldErrors()
      request.query = normalizeText((request.query ?? {}) as Record<string, unknown>, (name, key) =>
        errors.add(name, key)
      )
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
