import AjvModule from 'ajv'
import formatsModule from 'ajv-formats'
import type { FastifySchema, FastifySchemaCompiler } from 'fastify'
import type { FieldCheck } from '@roster/contracts'
import { FieldErrors } from './errors.js'
import { isMessageKey, type MessageKey } from './messages.js'

/** What the kit needs of an Ajv error; Ajv runs with `allErrors` and `verbose`. */
interface AjvErrorLike {
  keyword: string
  instancePath: string
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- ajv's ErrorObject params differ by keyword
  params: Record<string, any>
  data?: unknown
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- ajv's ErrorObject types its parent schema loosely
  parentSchema?: Record<string, any>
}

interface AjvLike {
  addKeyword(definition: Record<string, unknown>): unknown
  addFormat(name: string, format: unknown): unknown
}

// The WHATWG "valid e-mail address" grammar, which is what browsers accept in <input type=email>.
const EMAIL =
  /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$/

/**
 * An Ajv plugin adding the kit's keywords: `x-check` runs a named check from `checks` (so checks that a
 * schema cannot express are reported with every other field error), `x-messages` names the message
 * for a failed keyword, `email-or-empty` is a format.
 */
export function rosterAjvPlugin(ajv: AjvLike, options: { checks?: Record<string, FieldCheck> } = {}) {
  const checks = options.checks ?? {}
  ajv.addKeyword({ keyword: 'x-messages', schemaType: 'object' })
  ajv.addKeyword({
    keyword: 'x-check',
    schemaType: 'string',
    errors: true,
    validate: function runCheck(name: string, data: unknown) {
      const check = checks[name]
      if (!check) return true
      const key = check(data)
      if (key === null) return true
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- ajv reads a custom keyword's errors from the function object itself
      ;(runCheck as any).errors = [{ keyword: 'x-check', message: key, params: { key } }]
      return false
    }
  })
  ajv.addFormat('email-or-empty', { type: 'string', validate: (s: string) => s === '' || EMAIL.test(s) })
  ajv.addFormat('email', { type: 'string', validate: (s: string) => EMAIL.test(s) })
  return ajv
}

function datatypeOf(data: unknown): string {
  if (data === null) return 'null'
  if (Array.isArray(data)) return 'list'
  if (typeof data === 'object') return 'dict'
  if (typeof data === 'number') return Number.isInteger(data) ? 'int' : 'float'
  if (typeof data === 'boolean') return 'bool'
  return 'str'
}

function typeMessage(expected: string, data: unknown): [MessageKey, Record<string, unknown>?] {
  if (data === null) return ['null']
  switch (expected) {
    case 'object':
      return ['invalid_object', { datatype: datatypeOf(data) }]
    case 'array':
      return ['not_a_list', { datatype: datatypeOf(data) }]
    case 'integer':
      return ['invalid_integer']
    case 'number':
      return ['invalid_number']
    case 'boolean':
      return ['invalid_boolean']
    default:
      return ['invalid_string']
  }
}

function messageFor(error: AjvErrorLike): [MessageKey, Record<string, unknown>?] {
  const custom = error.parentSchema?.['x-messages']?.[error.keyword]
  if (typeof custom === 'string' && isMessageKey(custom)) return [custom]
  switch (error.keyword) {
    case 'required':
      return ['required']
    case 'type':
      return typeMessage(String(error.params.type).split(',')[0], error.data)
    case 'minLength':
      return error.params.limit === 1 ? ['blank'] : ['min_length', { limit: error.params.limit }]
    case 'maxLength':
      return ['max_length', { limit: error.params.limit }]
    case 'minimum':
    case 'exclusiveMinimum':
      return ['min_value', { limit: error.params.limit }]
    case 'maximum':
    case 'exclusiveMaximum':
      return ['max_value', { limit: error.params.limit }]
    case 'enum':
      return ['invalid_choice', { input: typeof error.data === 'object' ? JSON.stringify(error.data) : error.data }]
    case 'format':
      if (String(error.params.format).startsWith('email')) return ['invalid_email']
      if (error.params.format === 'date-time') return ['invalid_datetime']
      return ['invalid']
    case 'x-check':
      return isMessageKey(error.params.key) ? [error.params.key] : ['invalid']
    default:
      return ['invalid']
  }
}

function pathOf(error: AjvErrorLike): string[] {
  const parts = error.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  if (error.keyword === 'required') parts.push(String(error.params.missingProperty))
  return parts
}

/** Turns Ajv errors into DRF field errors: one message per field, nested objects nested. */
export function fieldErrorsFromAjv(errors: AjvErrorLike[]): FieldErrors {
  const out = new FieldErrors()
  for (const error of errors) {
    const path = pathOf(error)
    if (path.length === 0) path.push('non_field_errors')
    if (out.has(path)) continue
    const [key, params] = messageFor(error)
    out.add(path, key, params)
  }
  return out
}

/**
 * Validators for a service. Bodies are JSON and are checked as sent: no type coercion, so `null` is
 * reported as null (coercion would silently turn it into `""`, `0` or `false`). Query strings and path
 * parameters are text and are coerced to the schema's types.
 */
export function validatorCompiler(checks: Record<string, FieldCheck>): FastifySchemaCompiler<FastifySchema> {
  const make = (coerceTypes: false | 'array') => {
    const ajv = new AjvModule.default({
      allErrors: true,
      verbose: true,
      coerceTypes,
      useDefaults: true,
      removeAdditional: false,
      strict: false
    })
    formatsModule.default(ajv)
    rosterAjvPlugin(ajv as unknown as AjvLike, { checks })
    return ajv
  }
  const body = make(false)
  const text = make('array')
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Fastify's validator compiler type wants ajv's validate function, which TypeBox's compile returns untyped
  return ({ schema, httpPart }) => (httpPart === 'body' ? body : text).compile(schema as object) as any
}

/** Deeper JSON than any body of the API is refused outright (the walk below never recurses on the stack). */
export const MAX_JSON_DEPTH = 32

/** Body keys whose strings are taken exactly as sent (DRF's `trim_whitespace=False`): secrets. */
const UNTRIMMED = /password|secret|token/i

// With the `u` flag a well-formed pair is one code point, so only an unpaired surrogate matches.
const LONE_SURROGATE = /\p{Cs}/u

/** What is wrong with a text value whatever its field: NUL (PostgreSQL cannot store it), lone UTF-16 surrogates. */
export function badText(value: string): MessageKey | null {
  if (value.includes('\u0000')) return 'null_characters'
  if (LONE_SURROGATE.test(value)) return 'invalid_characters'
  return null
}

/**
 * The one input rule every service gets, applied to a parsed JSON body before validation: strings
 * are trimmed as DRF's `CharField` does (except secrets such as passwords), NUL and lone surrogates are
 * refused, numbers that are not finite (`1e309` parses as Infinity) are refused, and nesting deeper than
 * `MAX_JSON_DEPTH` is refused. Each problem is a field error at its path; answers the body to use.
 */
export function normalizeBody(body: unknown, errors: FieldErrors): unknown {
  const fix = (value: unknown, path: string[]): unknown => {
    if (typeof value === 'string') {
      const key = badText(value)
      if (key) errors.add(path.length ? path : ['non_field_errors'], key)
      return UNTRIMMED.test(path[path.length - 1] ?? '') ? value : value.trim()
    }
    if (typeof value === 'number' && !Number.isFinite(value))
      errors.add(path.length ? path : ['non_field_errors'], 'invalid_number')
    return value
  }
  // An explicit stack: a body nested a million levels deep must not overflow ours.
  const stack: { node: Record<string, unknown> | unknown[]; path: string[] }[] = []
  const root = fix(body, [])
  if (root && typeof root === 'object') stack.push({ node: root as Record<string, unknown>, path: [] })
  while (stack.length > 0) {
    const { node, path } = stack.pop()!
    if (path.length >= MAX_JSON_DEPTH) {
      errors.add(path.slice(0, 1).length ? path.slice(0, 1) : ['non_field_errors'], 'too_deep', {
        limit: MAX_JSON_DEPTH
      })
      continue
    }
    for (const key of Object.keys(node)) {
      const childPath = [...path, key]
      const keyProblem = badText(key)
      if (keyProblem) errors.add(['non_field_errors'], keyProblem)
      const child = fix((node as Record<string, unknown>)[key], childPath)
      ;(node as Record<string, unknown>)[key] = child
      if (child && typeof child === 'object') stack.push({ node: child as Record<string, unknown>, path: childPath })
    }
  }
  return root
}

// `?__proto__=x` is a parameter like any other: defined, never assigned (which would set a prototype).
function set(target: Record<string, unknown>, name: string, value: unknown) {
  Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true })
}

/**
 * The same rule for query strings and path parameters (text, already decoded): NUL and lone surrogates
 * are refused, values are trimmed (`trim`; path parameters are not). Reports the offending names; answers the cleaned values.
 */
export function normalizeText(
  values: Record<string, unknown>,
  onBad: (name: string, key: MessageKey) => void,
  trim = true
): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const clean = (v: string) => (trim ? v.trim() : v)
  for (const [name, value] of Object.entries(values)) {
    const problem = badText(name)
    if (problem) {
      onBad('non_field_errors', problem)
      continue
    }
    if (typeof value === 'string') {
      const key = badText(value)
      if (key) onBad(name, key)
      set(out, name, clean(value))
    } else if (Array.isArray(value)) {
      set(
        out,
        name,
        value.map((v) => {
          if (typeof v !== 'string') return v
          const key = badText(v)
          if (key) onBad(name, key)
          return clean(v)
        })
      )
    } else set(out, name, value)
  }
  return out
}
