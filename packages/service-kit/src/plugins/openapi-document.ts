import { publicOperation, type PublicRoute } from '@roster/contracts'
import { BODY_LIMIT_BYTES } from '../errors.js'
import { message, type MessageKey } from '../messages.js'

/**
 * What the route schemas alone do not say in the generated OpenAPI 3.0.3 document, added once here for
 * every service (and so for the gateway's merged document):
 *
 * - each public operation's `operationId` and Chinese title from `PUBLIC_ROUTES` (contracts/routes.ts);
 * - path ids as integers (routes match them as strings so that `abc` answers 404);
 * - `nullable` next to a `$ref` (which OpenAPI 3.0 ignores) as `anyOf: [$ref, null]` (see `orNull`);
 * - the rules enforced by `x-check`s and the `email-or-empty` format, in JSON Schema terms;
 * - request bodies titled in the contracts (`UserCreate`, `ProfileInput`, …) as named component schemas;
 * - the answers every operation may get (401, 404, 405, 413, 415, 429, 500, 503, 504) and the headers every
 *   answer carries, as `components.responses` / `components.headers`, and `Accept-Language` as
 *   `components.parameters`, each referenced by every operation;
 * - an example for every request body and answer, in zh-Hans as the API speaks by default.
 *
 * Only the document changes: validation and serialization keep the route schemas as they are.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- an OpenAPI document walked and rewritten key by key
type Json = Record<string, any>

const SCHEMAS = '#/components/schemas/'
/**
 * `X | null` for a `$ref` in OpenAPI 3.0.3: `anyOf` with a branch that is only `null` (`nullable` needs a
 * `type` beside it, and `allOf: [$ref]` + `nullable` would still refuse `null` through the `$ref`, as
 * validators read it). openapi-typescript and @hey-api generate `X | null`.
 */
const orNull = (reference: Json, rest: Json = {}) => ({
  ...rest,
  anyOf: [reference, { type: 'object', nullable: true, enum: [null] }]
})
const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` })
const zh = (key: MessageKey, params: Record<string, unknown> = {}) => message(key, 'zh', params)

const COMMON_HEADERS = {
  'X-Request-Id': ref('headers', 'XRequestId'),
  'X-RateLimit-Limit': ref('headers', 'RateLimitLimit'),
  'X-RateLimit-Remaining': ref('headers', 'RateLimitRemaining'),
  'X-RateLimit-Reset': ref('headers', 'RateLimitReset')
}

const HEADERS: Json = {
  XRequestId: {
    description: 'The id of this request in every log; the one the client sent when it is a valid id, else a new one.',
    schema: { type: 'string', maxLength: 128, example: 'req-5b1c2f0e9d' }
  },
  RateLimitLimit: {
    description: 'Requests a client address may make per minute (absent when the gateway does not rate limit).',
    schema: { type: 'integer', minimum: 0, example: 600 }
  },
  RateLimitRemaining: {
    description: 'Requests left in the current minute.',
    schema: { type: 'integer', minimum: 0, example: 599 }
  },
  RateLimitReset: {
    description: 'Seconds until the current minute ends and the count starts again.',
    schema: { type: 'integer', minimum: 0, example: 42 }
  },
  RetryAfter: {
    description: 'Seconds to wait before trying again.',
    required: true,
    schema: { type: 'integer', minimum: 0, example: 1 }
  },
  WWWAuthenticate: {
    description: 'The authentication scheme to use: a bearer access token.',
    required: true,
    schema: { type: 'string', example: 'Bearer realm="api"' }
  },
  XTotalCount: {
    description: 'The number of matching rows (all pages).',
    required: true,
    schema: { type: 'integer', minimum: 0, example: 2 }
  },
  Link: {
    description: 'RFC 8288 links to the next and previous pages, when there are any.',
    schema: {
      type: 'string',
      example: '<http://127.0.0.1:8080/api/users/?limit=100&offset=100>; rel="next"'
    }
  }
}

const detail = (text: string) => ({ detail: text })
const detailContent = (examples: Record<string, { summary: string; value: unknown }>) => ({
  'application/json': { schema: { $ref: `${SCHEMAS}Detail` }, examples }
})
const errorResponse = (
  description: string,
  examples: Record<string, { summary: string; value: unknown }>,
  headers: Json = {}
) => ({
  description,
  headers: { ...COMMON_HEADERS, ...headers },
  content: detailContent(examples)
})

const RESPONSES: Json = {
  ValidationError: {
    description:
      'The request is not valid: field errors in the Django REST Framework shape (`non_field_errors` for the rest); ' +
      'also a malformed request (a query that is not percent-encoded UTF-8, a bad `Host`), as `detail` and `non_field_errors`.',
    headers: { ...COMMON_HEADERS },
    content: {
      'application/json': {
        schema: { $ref: `${SCHEMAS}FieldErrors` },
        examples: {
          required: {
            summary: 'required fields missing',
            value: { username: [zh('required')], password: [zh('required')] }
          },
          profile: { summary: 'a nested field', value: { profile: { identify_id: [zh('resident_id_format')] } } },
          malformed: {
            summary: 'malformed JSON',
            value: {
              detail: zh('parse_error', { reason: 'Unexpected end of JSON input' }),
              non_field_errors: [zh('parse_error', { reason: 'Unexpected end of JSON input' })]
            }
          }
        }
      }
    }
  },
  Unauthorized: errorResponse(
    'No valid access token: missing, malformed, expired or of an ended session (or, on login, wrong credentials). ' +
      'On a public operation: an `Authorization` header that is not a valid access token.',
    {
      missing: { summary: 'no token', value: detail(zh('not_authenticated')) },
      invalid: { summary: 'invalid, expired or revoked token', value: detail(zh('token_not_valid')) },
      badCredentials: {
        summary: 'login: wrong username or password, or an inactive user',
        value: detail(zh('login_failed'))
      },
      badRefresh: {
        summary: 'refresh: invalid, expired or revoked refresh token',
        value: detail(zh('refresh_not_valid'))
      }
    },
    { 'WWW-Authenticate': ref('headers', 'WWWAuthenticate') }
  ),
  Forbidden: errorResponse('The caller may not do this (admin only, or self or admin).', {
    denied: { summary: 'not allowed', value: detail(zh('permission_denied')) }
  }),
  NotFound: errorResponse('No such resource (also for a path id that is not a positive 32-bit integer).', {
    notFound: { summary: 'not found', value: detail(zh('not_found')) }
  }),
  MethodNotAllowed: errorResponse('The path exists but not with this method.', {
    method: { summary: 'wrong method', value: detail(zh('method_not_allowed', { method: 'TRACE' })) }
  }),
  Conflict: errorResponse('A concurrent change won; send the request again.', {
    conflict: { summary: 'concurrent change', value: detail(zh('conflict')) }
  }),
  PayloadTooLarge: errorResponse(`The body is larger than ${BODY_LIMIT_BYTES} bytes.`, {
    tooLarge: { summary: 'body too large', value: detail(zh('payload_too_large', { limit: BODY_LIMIT_BYTES })) }
  }),
  UnsupportedMediaType: errorResponse('The body is not `application/json`.', {
    mediaType: { summary: 'not JSON', value: detail(zh('unsupported_media_type', { media_type: 'text/plain' })) }
  }),
  TooManyRequests: errorResponse(
    'Too many requests from this address (or too many failed logins, or the password queue is full); wait `Retry-After` seconds.',
    { throttled: { summary: 'throttled', value: detail(zh('throttled', { wait: 42 })) } },
    { 'Retry-After': ref('headers', 'RetryAfter') }
  ),
  InternalServerError: errorResponse('An unexpected error; it is logged with the request id.', {
    serverError: { summary: 'server error', value: detail(zh('server_error')) }
  }),
  ServiceUnavailable: errorResponse(
    'The service (or its database or NATS) is unavailable for now; try again after `Retry-After` seconds.',
    { unavailable: { summary: 'unavailable', value: detail(zh('service_unavailable')) } },
    { 'Retry-After': ref('headers', 'RetryAfter') }
  ),
  GatewayTimeout: errorResponse(
    'The service behind the gateway took too long to answer; the change may or may not have been made.',
    {
      timeout: { summary: 'timed out', value: detail(zh('gateway_timeout')) }
    }
  )
}

const ERROR_RESPONSES: Record<string, string> = {
  '400': 'ValidationError',
  '401': 'Unauthorized',
  '403': 'Forbidden',
  '404': 'NotFound',
  '405': 'MethodNotAllowed',
  '409': 'Conflict',
  '413': 'PayloadTooLarge',
  '415': 'UnsupportedMediaType',
  '429': 'TooManyRequests',
  '500': 'InternalServerError',
  '503': 'ServiceUnavailable',
  '504': 'GatewayTimeout'
}

const PARAMETERS: Json = {
  AcceptLanguage: {
    name: 'Accept-Language',
    in: 'header',
    required: false,
    // No `default` or `example`: Swagger UI would send it with every "Try it out" and override the browser's language.
    description: 'The language of messages: Chinese (`zh-Hans`) when absent or unknown, English for `en`.',
    schema: { type: 'string' }
  }
}

/** Path ids as the Chinese API document names them (`pk：用户id。`), by the collection they follow. */
const PATH_IDS: Record<string, string> = {
  users: '用户id (user id)',
  groups: '组id (group id)',
  occupations: '职业id (occupation id)',
  'user-logs': '记录id (record id)',
  'black-list': '黑名单记录id (blacklist entry id)'
}

/** JSON Schema for what an `x-check` enforces, as far as a schema can say it (the rest is in `description`). */
const CHECK_RULES: Record<string, Json> = {
  // 8–72 bytes of UTF-8: at least 2 and at most 72 characters; at least one character that is not a digit.
  password: { minLength: 2, maxLength: 72, pattern: '[^0-9]' },
  'resident-id': { minLength: 18, maxLength: 18, pattern: '^[0-9]{17}[0-9X]$' }
}

/** A document made by @fastify/swagger, completed as described above (in place; also returned). */
export function completeDocument(doc: Json, registered: Record<string, Json> = {}): Json {
  doc.components ??= {}
  doc.components.schemas ??= {}
  restoreNullableRefs(doc.components.schemas, registered)
  doc.components.headers = { ...HEADERS, ...doc.components.headers }
  doc.components.responses = { ...RESPONSES, ...doc.components.responses }
  doc.components.parameters = { ...PARAMETERS, ...doc.components.parameters }
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const [method, operation] of Object.entries<Json>(item)) {
      const route = publicOperation(method, path)
      if (route) completeOperation(doc, route, method, operation)
    }
  }
  for (const schema of Object.values<Json>(doc.components.schemas)) fixSchema(schema)
  return doc
}

/**
 * @fastify/swagger drops `nullable` beside a `$ref` (`Nullable(Type.Ref('Profile'))`); the registered
 * schemas still have it, so it is put back the way OpenAPI 3.0 means it.
 */
function restoreNullableRefs(schemas: Json, registered: Record<string, Json>) {
  for (const source of Object.values(registered)) {
    const target = typeof source?.$id === 'string' ? schemas[source.$id] : undefined
    if (!target?.properties || !source.properties) continue
    for (const [name, property] of Object.entries<Json>(source.properties)) {
      if (property?.nullable === true && typeof property.$ref === 'string') {
        const { $ref: _ref, nullable: _nullable, ...rest } = property
        target.properties[name] = orNull({ $ref: `${SCHEMAS}${property.$ref.replace(/^.*[#/]/, '')}` }, rest)
      }
    }
  }
}

/** Per schema node: `nullable` beside `$ref`, `examples` (3.1) to `example` (3.0), the checks' rules, emails. */
function fixSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(fixSchema)
  if (!schema || typeof schema !== 'object') return schema
  const s = schema as Json
  for (const [key, value] of Object.entries(s)) {
    if (key === 'example' || key === 'examples' || key === 'default' || key === 'enum') continue
    s[key] =
      key === 'properties'
        ? Object.fromEntries(Object.entries<Json>(value).map(([k, v]) => [k, fixSchema(v)]))
        : fixSchema(value)
  }
  if (Array.isArray(s.examples)) {
    s.example ??= s.examples[0]
    delete s.examples
  }
  const rules = typeof s['x-check'] === 'string' ? CHECK_RULES[s['x-check']] : undefined
  if (rules) Object.assign(s, rules)
  if (s.format === 'email-or-empty') {
    const { format: _format, maxLength, ...rest } = s
    for (const key of Object.keys(s)) delete s[key]
    Object.assign(s, rest, {
      anyOf: [
        { type: 'string', format: 'email', maxLength },
        { type: 'string', maxLength: 0 }
      ]
    })
    delete s.type
    s.example ??= 'email1@test.com'
  }
  if (typeof s.$ref === 'string' && Object.keys(s).length > 1) {
    const { $ref, nullable, ...rest } = s
    for (const key of Object.keys(s)) delete s[key]
    Object.assign(s, nullable ? orNull({ $ref }, rest) : { ...rest, allOf: [{ $ref }] })
  }
  return s
}

function completeOperation(doc: Json, route: PublicRoute, method: string, operation: Json) {
  operation.operationId = route.operationId
  const english = typeof operation.summary === 'string' ? operation.summary : ''
  if (!operation.summary?.includes(route.title))
    operation.summary = english ? `${route.title} · ${english}` : route.title

  const parameters: Json[] = (operation.parameters ?? []).filter(
    (p: Json) => !(p.in === 'header' && /^accept-language$/i.test(p.name))
  )
  for (const parameter of parameters) {
    if (parameter.in === 'path') {
      parameter.schema = { type: 'integer', format: 'int32', minimum: 1, maximum: 2147483647, example: 1 }
      const collection = route.path.split('/')[route.path.split('/').indexOf(`:${parameter.name}`) - 1] ?? ''
      parameter.description = PATH_IDS[collection] ?? parameter.description ?? 'id'
    }
    if (parameter.schema) fixSchema(parameter.schema)
  }
  operation.parameters = [...parameters, ref('parameters', 'AcceptLanguage')]

  const body = operation.requestBody?.content?.['application/json']
  if (body?.schema) {
    fixSchema(body.schema)
    body.schema = nameSchemas(doc, body.schema)
    body.example ??= exampleOf(doc, body.schema)
  }

  const responses: Json = (operation.responses ??= {})
  const secured = !(Array.isArray(operation.security) && operation.security.length === 0)
  const hasPathIds = parameters.some((p) => p.in === 'path')
  // Any request may be malformed before routing (a query that is not percent-encoded UTF-8, a bad Host): 400.
  // Any request may carry an Authorization header that is not a valid token: 401, on public operations too
  // (as Django REST Framework does).
  const needed = ['400', '401', '405', '429', '500', '503', '504']
  if (hasPathIds) needed.push('404')
  // A body may be sent to any operation but GET: too large is 413, and one that is not JSON is 415.
  if (body || !['get', 'head'].includes(method)) needed.push('413', '415')
  // A write that keeps losing to concurrent ones (deadlock, serialization failure) answers 409 after its retries.
  if (secured && ['post', 'put', 'patch', 'delete'].includes(method)) needed.push('409')
  for (const code of needed) responses[code] ??= ref('responses', ERROR_RESPONSES[code]!)

  for (const [code, response] of Object.entries<Json>(responses)) {
    if (response.$ref) continue
    const media = response.content?.['application/json']
    const schemaRef: string | undefined = media?.schema?.$ref
    if (
      ERROR_RESPONSES[code] &&
      (schemaRef === `${SCHEMAS}Detail` || schemaRef === `${SCHEMAS}FieldErrors`) &&
      !code.startsWith('2')
    ) {
      responses[code] = ref('responses', ERROR_RESPONSES[code]!)
      continue
    }
    const headers: Json = { ...COMMON_HEADERS }
    for (const [name, header] of Object.entries<Json>(response.headers ?? {})) {
      if (/^x-total-count$/i.test(name)) headers['X-Total-Count'] = ref('headers', 'XTotalCount')
      else if (/^link$/i.test(name)) headers.Link = ref('headers', 'Link')
      else headers[name] = header
    }
    response.headers = headers
    if (media?.schema) {
      fixSchema(media.schema)
      if (schemaRef === `${SCHEMAS}Detail`)
        media.example ??= detail(zh(route.operationId.startsWith('logout') ? 'logged_out' : 'deleted'))
      media.example ??= exampleOf(doc, media.schema)
    }
    // @fastify/swagger says "Default Response" or the schema's own description: the answer is described instead.
    if (code.startsWith('2') || !response.description || response.description === 'Default Response') {
      response.description = SUCCESS[route.operationId] ?? describe(media?.schema)
    }
  }
}

/** Successful answers that are not simply "the X" or "a page of Xs". */
const SUCCESS: Record<string, string> = {
  login:
    'Logged in: `access` goes in `Authorization: Bearer …` (60 minutes), `refresh` gets new access tokens (7 days).',
  refreshToken: 'A new access token (and a new refresh token when rotation is on).',
  logout: 'Logged out: the session has ended for every service.',
  logoutWithPost: 'Logged out: the session has ended for every service.',
  getJwks: 'The public keys (JWKS) that verify access tokens.',
  deleteUser: 'Deleted.',
  deleteGroup: 'Deleted.',
  deleteOccupation: 'Deleted.',
  deleteBlackListEntry: 'Removed from the blacklist: the entry is kept with `is_delete` 1.',
  removeGroupMember: 'Removed from the group.',
  addGroupMembers: "The group's members after the change: the first page, as the member list answers it."
}

const NOUNS: Record<string, [string, string]> = {
  User: ['user', 'users'],
  Group: ['group', 'groups'],
  Occupation: ['occupation', 'occupations'],
  UserLog: ['login or logout record', 'login and logout records'],
  BlackListEntry: ['blacklist entry', 'blacklist entries'],
  UserGroupRow: ['group, flattened with its profile', 'groups, each flattened with its profile'],
  TokenPair: ['access and refresh tokens', 'token pairs'],
  Jwks: ['JSON Web Key Set', 'key sets']
}

function describe(schema: Json | undefined): string {
  if (!schema) return 'Done.'
  const name = (s: Json | undefined) => (typeof s?.$ref === 'string' ? s.$ref.slice(SCHEMAS.length) : undefined)
  if (schema.type === 'array') {
    const item = name(schema.items)
    const what = item ? (NOUNS[item]?.[1] ?? item) : 'items'
    return `A page of the ${what} as a bare JSON array; \`X-Total-Count\` and \`Link\` tell the rest.`
  }
  const single = name(schema)
  if (single) return single === 'Detail' ? 'Done: a confirmation message.' : `The ${NOUNS[single]?.[0] ?? single}.`
  return 'The answer.'
}

/** A request body schema with a `title` (and its titled parts) as named component schemas, referenced. */
function nameSchemas(doc: Json, schema: Json): Json {
  if (!schema || typeof schema !== 'object' || schema.$ref) return schema
  if (schema.properties) {
    for (const [key, value] of Object.entries<Json>(schema.properties)) schema.properties[key] = nameSchemas(doc, value)
  }
  if (typeof schema.title !== 'string' || !/^[A-Z]\w+$/.test(schema.title)) return schema
  const { title, nullable, description, ...component } = schema
  doc.components.schemas[title] ??= { title, description, ...component }
  const reference = { $ref: `${SCHEMAS}${title}` }
  return nullable ? orNull(reference, description ? { description } : {}) : reference
}

/** An example built from the schema's own or its components' examples. */
function exampleOf(doc: Json, schema: Json | undefined, depth = 0): unknown {
  if (!schema || depth > 8) return undefined
  if (schema.example !== undefined) return schema.example
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0]
  if (typeof schema.$ref === 'string')
    return exampleOf(doc, doc.components.schemas[schema.$ref.slice(SCHEMAS.length)], depth + 1)
  if (Array.isArray(schema.allOf)) return exampleOf(doc, schema.allOf[0], depth + 1)
  if (Array.isArray(schema.anyOf)) return exampleOf(doc, schema.anyOf[0], depth + 1)
  if (schema.type === 'array') {
    const item = exampleOf(doc, schema.items, depth + 1)
    return item === undefined ? [] : [item]
  }
  if (schema.type === 'object' && schema.properties) {
    const out: Json = {}
    for (const [key, value] of Object.entries<Json>(schema.properties)) {
      const example = exampleOf(doc, value, depth + 1)
      if (example !== undefined) out[key] = example
    }
    return out
  }
  return undefined
}
