import t from 'tap'
import fc from 'fast-check'
import { startE2E, client, ADMIN } from './helper.js'
import { buildRequest, rawRequest, type RawResponse } from './raw-http.js'
import { OpenApiChecker } from './openapi-check.js'

// Every operation of the merged OpenAPI document, driven with hostile values in every position (path
// parameters, query, headers, body), as an admin, as a plain user, with garbage credentials and with
// none. Every answer must be a non-5xx JSON answer in the API's DRF error shape. Requests go over bare
// sockets so that what fetch refuses to send (raw bytes, bad Host, control characters) is sent too.
//
// The generated requests come from fast-check with a fixed seed and a fixed number per operation; all
// of them are sent and every failure is collected (no shrinking: a report of every class that fails is
// more useful than one minimal example, and the time stays bounded).

t.setTimeout(180_000)

const SEED = 20261130
const RUNS_PER_OPERATION = 24
const CONCURRENCY = 16
const ANSWER_TIMEOUT_MS = 8_000

type Chunk = string | Buffer
const bytes = (...parts: Chunk[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)))

// ------------------------------------------------------------------ hostile values

/** Strings that are valid Unicode but odd: control characters, bidi, combining, full-width, confusables, huge. */
const oddStrings = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\u0001\u001f\u007f',
  'ａｄｍｉｎ',
  'аdmin',
  'Ärzte',
  'e\u0301\u0301\u0301',
  '\u202Eevil\u202C',
  '\u200B\u200D\uFEFF',
  '\uFFFF\uFFFE\uFDD0',
  '👨‍👩‍👧‍👦',
  '张三',
  'x'.repeat(10_000),
  '张'.repeat(5_000),
  '%00',
  "'; DROP TABLE users; --",
  '${jndi:ldap://x}',
  '../../etc/passwd',
  '1e309',
  'NaN',
  '-0',
  '100000190001010001',
  '18888888888'
]

/** Lone surrogates: valid JSON text (escaped), invalid Unicode. */
const loneSurrogates = ['\ud800', '\udfff', 'victim\ud800', '\udc00a\ud83d']

/** Bytes that are not UTF-8 at all, put raw inside a JSON string. */
const invalidUtf8 = [
  Buffer.from([0xff]),
  Buffer.from([0xc3, 0x28]),
  Buffer.from([0xed, 0xa0, 0x80]), // a surrogate encoded as UTF-8 (CESU-8)
  Buffer.from([0xf4, 0x90, 0x80, 0x80]), // above U+10FFFF
  Buffer.from([0xc0, 0x80]), // overlong NUL
  Buffer.from([0xe2, 0x82]) // truncated
]

/** Number tokens written raw into the JSON text. */
const rawNumbers = [
  '1e309',
  '-1e309',
  '1e-400',
  '123456789012345678901234567890',
  '-0',
  '0.0000001',
  '9007199254740993',
  '1.5',
  '-1',
  '0',
  '2147483648',
  '1E400'
]

const jsonString = fc.oneof(
  fc.constantFrom(...oddStrings, ...loneSurrogates).map((s) => Buffer.from(JSON.stringify(s))),
  fc.constantFrom(...invalidUtf8).map((b) => bytes('"a', b, 'b"')),
  fc.string({ unit: 'binary', maxLength: 30 }).map((s) => Buffer.from(JSON.stringify(s)))
)
const jsonScalar = fc.oneof(
  jsonString,
  fc.constantFrom(...rawNumbers).map((n) => Buffer.from(n)),
  fc.constantFrom('true', 'false', 'null', '[]', '{}', '[null]', '{"":""}').map((n) => Buffer.from(n)),
  fc.double().map((d) => Buffer.from(Number.isFinite(d) ? JSON.stringify(d) : String(d))) // NaN / Infinity: not JSON at all
)
const deep = (depth: number, open: string, close: string) => Buffer.from(open.repeat(depth) + close.repeat(depth))
const jsonValue: fc.Arbitrary<Buffer> = fc.letrec<{ value: Buffer }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    jsonScalar,
    fc
      .array(tie('value'), { maxLength: 3 })
      .map((items) => bytes('[', ...items.flatMap((item, i) => (i === 0 ? [item] : [',', item])), ']')),
    fc.constantFrom(deep(3000, '[', ']'), deep(2000, '{"a":', '}'), deep(50, '{"profile":', '}'))
  )
})).value

/** Builds `{"k": v, ...}` from raw values; duplicate keys are allowed on purpose. */
function jsonObject(entries: readonly (readonly [string, Buffer])[]): Buffer {
  return bytes('{', ...entries.flatMap(([key, value], i) => [i === 0 ? '' : ',', JSON.stringify(key), ':', value]), '}')
}

/** Whole bodies that are not what any operation expects. */
const wholeBodies: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constantFrom(
    Buffer.alloc(0),
    Buffer.from('{'),
    Buffer.from('{"a":1,}'),
    Buffer.from('NaN'),
    Buffer.from('\uFEFF{}'),
    Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]), // UTF-16 with BOM
    Buffer.from('{"__proto__":{"is_staff":true},"constructor":{"prototype":{"x":1}}}'),
    Buffer.from(`{"a":"${'b'.repeat(1_100_000)}"}`), // over the 1 MiB limit
    deep(100_000, '[', ']'),
    Buffer.from('1e309'),
    Buffer.from('"\\ud800"'),
    Buffer.from('{"username":"x","username":"y"}')
  ),
  jsonValue
)

// ------------------------------------------------------------------ the OpenAPI document

interface Operation {
  method: string
  path: string
  pathParams: string[]
  queryParams: string[]
  /** Top-level body properties, and the properties of nested objects (profile) by name. */
  bodyFields: string[]
  nested: Record<string, string[]>
  hasBody: boolean
}

function resolveSchema(doc: any, schema: any): any {
  let s = schema
  for (let i = 0; i < 10 && s?.$ref; i++)
    s = s.$ref
      .split('/')
      .slice(1)
      .reduce((o: any, k: string) => o?.[k], doc)
  return s
}

function propertiesOf(doc: any, schema: any): Record<string, any> {
  const s = resolveSchema(doc, schema)
  const out: Record<string, any> = { ...(s?.properties ?? {}) }
  for (const part of [...(s?.allOf ?? []), ...(s?.anyOf ?? []), ...(s?.oneOf ?? [])])
    Object.assign(out, propertiesOf(doc, part))
  return out
}

function operationsOf(doc: any): Operation[] {
  const operations: Operation[] = []
  for (const [path, item] of Object.entries<any>(doc.paths ?? {})) {
    for (const [method, op] of Object.entries<any>(item)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue
      const parameters = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p: any) => resolveSchema(doc, p))
      const schema = op.requestBody?.content?.['application/json']?.schema
      const props = schema ? propertiesOf(doc, schema) : {}
      const nested: Record<string, string[]> = {}
      for (const [name, sub] of Object.entries(props)) {
        const subProps = Object.keys(propertiesOf(doc, sub))
        if (subProps.length > 0) nested[name] = subProps
      }
      operations.push({
        method: method.toUpperCase(),
        path,
        pathParams: parameters.filter((p: any) => p.in === 'path').map((p: any) => p.name),
        queryParams: parameters.filter((p: any) => p.in === 'query').map((p: any) => p.name),
        bodyFields: Object.keys(props),
        nested,
        hasBody: op.requestBody !== undefined
      })
    }
  }
  return operations
}

// ------------------------------------------------------------------ requests

const segmentValues = [
  '0',
  '-1',
  '1.5',
  '1e309',
  '99999999999999999999',
  '0x10',
  '%00',
  '%FF',
  '%',
  '%ZZ',
  '%E2%82',
  '%ED%A0%80', // a lone surrogate, percent-encoded as UTF-8
  '..',
  '%2e%2e',
  '%2F',
  'a%2Fb',
  '\\..\\..\\internal',
  '%C3%A4',
  '%EF%BC%91', // full-width 1
  'x'.repeat(3000)
]
const rawSegmentBytes = [
  Buffer.from('é'),
  Buffer.from([0xff]),
  Buffer.from([0x00]),
  Buffer.from('\t'),
  Buffer.from('１')
]

const queryValues = [
  '',
  '%00',
  'a%00b',
  '%FF',
  '%',
  '%0',
  '%E2%82',
  '%ED%A0%80',
  '1e309',
  '-1',
  '0',
  '1001',
  '99999999999999999999',
  'true',
  'NaN',
  '2026-13-45T99:99:99Z',
  '%EF%BC%91',
  '%E2%80%AEevil',
  'x'.repeat(5000),
  '+%2B+'
]

interface Identities {
  admin: string
  user: string
  /** Sessions of their own for the operations that end a session (logout), so the others keep theirs. */
  spareAdmin: string
  spareUser: string
  ids: string[]
  port: number
}

interface HostileRequest {
  method: string
  target: Buffer
  headers: [string, Chunk][]
  body: Buffer | undefined
}
const requests = (op: Operation, identities: Identities): fc.Arbitrary<HostileRequest> => {
  const who = op.path.includes('logout')
    ? { ...identities, admin: identities.spareAdmin, user: identities.spareUser }
    : identities
  const segment = fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...who.ids) },
    { weight: 3, arbitrary: fc.constantFrom(...segmentValues).map((s) => Buffer.from(s)) },
    { weight: 1, arbitrary: fc.constantFrom(...rawSegmentBytes).map((b) => bytes('1', b)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 8 }).map((s) => Buffer.from(encodeURIComponent(s))) }
  )
  const queryName = fc.oneof(
    fc.constantFrom(...op.queryParams, 'x', 'search', 'limit'),
    fc.constantFrom('%FF', 'a%00', 'limit[]', 'search[a]', '', '%')
  )
  const queryValue = fc.oneof(
    fc.constantFrom(...queryValues).map((s) => Buffer.from(s)),
    fc.string({ unit: 'binary', maxLength: 12 }).map((s) => Buffer.from(encodeURIComponent(s))),
    fc.constantFrom(...invalidUtf8, Buffer.from('é'))
  )
  const query = fc.array(fc.tuple(queryName, queryValue), { maxLength: 4 })

  const authorization = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(`Bearer ${who.admin}`, `Bearer ${who.user}`) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    {
      weight: 2,
      arbitrary: fc.constantFrom<Chunk>(
        'Bearer',
        'Bearer ',
        'Bearer x.y.z',
        'Bearer eyJhbGciOiJub25lIn0.eyJ1c2VyX2lkIjoxfQ.',
        `Bearer ${who.admin}x`,
        `Bearer ${who.admin.split('.').slice(0, 2).join('.')}.${'A'.repeat(86)}`,
        `bearer ${who.user}`,
        `Bearer  ${who.user}`,
        'Basic Zm9vOmJhcg==',
        `Bearer ${'a'.repeat(9000)}`,
        bytes('Bearer ', Buffer.from([0xff, 0xfe])),
        'Bearer \u0001'
      )
    }
  )
  const host = fc.oneof(
    { weight: 4, arbitrary: fc.constant<Chunk | undefined>(`127.0.0.1:${who.port}`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom<Chunk | undefined>(
        'a b',
        '',
        'evil.example',
        '[::1',
        'x'.repeat(300),
        '127.0.0.1:99999',
        undefined,
        bytes('h', Buffer.from([0xff])),
        'a/b?c#d'
      )
    }
  )
  const acceptLanguage = fc.constantFrom<Chunk | undefined>(
    undefined,
    undefined,
    'en',
    'zh-Hans',
    '*;q=NaN',
    'en;q=1e309',
    'x'.repeat(4000),
    ',,,;;;',
    bytes(Buffer.from([0xff])),
    '\u00e9'.normalize('NFD')
  )
  const contentType = fc.constantFrom<Chunk | undefined>(
    'application/json',
    'application/json',
    'application/json; charset=utf-8',
    'application/json; charset=utf-16',
    'application/json; charset=latin1',
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/merge-patch+json',
    undefined,
    ';;;',
    'application/json\t; x="'
  )

  const fieldValue = fc.oneof(
    { weight: 4, arbitrary: jsonValue },
    { weight: 1, arbitrary: fc.constantFrom(...rawNumbers).map((n) => Buffer.from(n)) }
  )
  const nestedObject = (fields: string[]) =>
    fc
      .array(fc.tuple(fc.constantFrom(...fields, 'x'), fieldValue), { maxLength: fields.length + 1 })
      .map((entries) => jsonObject(entries))
  const bodyEntry = fc.oneof(
    fc.tuple(fc.constantFrom(...op.bodyFields, 'x', 'is_superuser'), fieldValue),
    ...Object.entries(op.nested).map(([name, fields]) => fc.tuple(fc.constant(name), nestedObject(fields)))
  )
  const body =
    op.hasBody || op.method !== 'GET'
      ? fc.oneof(
          {
            weight: 3,
            arbitrary: fc
              .array(bodyEntry, { maxLength: Math.max(2, op.bodyFields.length + 1) })
              .map((entries) => jsonObject(entries))
          },
          { weight: 1, arbitrary: wholeBodies },
          { weight: op.hasBody ? 0 : 1, arbitrary: fc.constant(undefined) }
        )
      : fc.constantFrom(undefined, undefined, undefined, Buffer.from('{"a":1}'))

  return fc
    .record({
      segments: fc.array(segment, { minLength: op.pathParams.length, maxLength: op.pathParams.length }),
      query,
      authorization,
      host,
      acceptLanguage,
      contentType,
      body
    })
    .map((r) => {
      let i = 0
      const pathParts = op.path
        .split(/(\{[^}]+\})/)
        .map((part) => (/^\{[^}]+\}$/.test(part) ? r.segments[i++]! : Buffer.from(part)))
      const queryParts = r.query.flatMap(([name, value], j) => [j === 0 ? '?' : '&', name, '=', value])
      const target = bytes(...pathParts, ...queryParts)
      const headers: [string, Chunk][] = []
      if (r.host !== undefined) headers.push(['Host', r.host])
      if (r.authorization !== undefined) headers.push(['Authorization', r.authorization])
      if (r.acceptLanguage !== undefined) headers.push(['Accept-Language', r.acceptLanguage])
      if (r.body !== undefined && r.contentType !== undefined) headers.push(['Content-Type', r.contentType])
      return { method: op.method, target, headers, body: r.body }
    })
}

// ------------------------------------------------------------------ what every answer must be

function isFieldErrors(value: unknown, depth = 0): boolean {
  if (depth > 5 || value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const entries = Object.entries(value)
  return (
    entries.length > 0 &&
    entries.every(
      ([, v]) =>
        (Array.isArray(v) &&
          v.length > 0 &&
          v.every(
            (m) =>
              typeof m === 'string' ||
              isFieldErrors(m, depth + 1) ||
              (m !== null && typeof m === 'object' && Object.keys(m).length === 0)
          )) ||
        isFieldErrors(v, depth + 1)
    )
  )
}

/** What is wrong with an answer, or undefined when it is what the contract allows. */
function problem(res: RawResponse): string | undefined {
  if (res.status >= 500) return `status ${res.status}`
  const type = res.headers['content-type'] ?? ''
  if (res.status === 204 || res.status === 304) return res.body.length === 0 ? undefined : `${res.status} with a body`
  if (!/^application\/json\b/i.test(type)) return `content-type ${JSON.stringify(type)}`
  let json: any
  try {
    json = JSON.parse(res.body.toString('utf8'))
  } catch {
    return 'body is not JSON'
  }
  if (res.status < 400) return undefined
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return 'error body is not an object'
  if ('detail' in json) {
    if (typeof json.detail !== 'string' || json.detail === '') return 'detail is not a non-empty string'
    // `code` where the API shows one (invalid tokens); a body that cannot be parsed also carries its message
    // as `non_field_errors`, the kit's choice so that clients of either DRF shape read it.
    const extra = Object.keys(json).filter((k) => k !== 'detail' && k !== 'code' && k !== 'non_field_errors')
    if (extra.length > 0) return `detail beside ${extra.join(', ')}`
    if (json.code !== undefined && typeof json.code !== 'string') return 'code is not a string'
    const nfe = json.non_field_errors
    return nfe === undefined || (Array.isArray(nfe) && nfe.every((m: unknown) => typeof m === 'string'))
      ? undefined
      : 'non_field_errors beside detail is not a list of strings'
  }
  return isFieldErrors(json) ? undefined : 'not the DRF error shape'
}

function show(buffer: Buffer, max = 160): string {
  const text = JSON.stringify(buffer.toString('latin1'))
  return text.length > max ? `${text.slice(0, max)}…(${buffer.length} bytes)` : text
}

t.test(
  'every operation of the merged OpenAPI document, hostile values everywhere: never a 5xx, always the DRF shape',
  async (t) => {
    const system = await startE2E(t, ['identity', 'directory', 'audit', 'gateway'])
    const api = client(system.gatewayUrl!)
    const port = Number(new URL(system.gatewayUrl!).port)

    const adminLogin = await api('POST', '/api/auth/', { body: ADMIN })
    t.equal(adminLogin.status, 200, 'the admin logs in')
    const victim = await api('POST', '/api/users/', {
      body: {
        username: 'hostile-victim',
        password: 'password-1',
        profile: { name: '张三', gender: 0, age: 20, identify_id: '100000190001010001', phone: '18888888888' }
      }
    })
    t.equal(victim.status, 200, 'a user to be fuzzed registers')
    const userLogin = await api('POST', '/api/auth/', { body: { username: 'hostile-victim', password: 'password-1' } })
    t.equal(userLogin.status, 200, 'that user logs in')
    const spareAdmin = (await api('POST', '/api/auth/', { body: ADMIN })).json.access
    const spareUser = (
      await api('POST', '/api/auth/', { body: { username: 'hostile-victim', password: 'password-1' } })
    ).json.access
    const admin = adminLogin.json.access as string
    const group = await api('POST', '/api/groups/', { token: admin, body: { name: 'hostile-group' } })
    const listed = await api('POST', '/api/black-list/', {
      token: admin,
      body: { patient: 'hostile-patient', reason: 'x' }
    })
    // Real ids of every kind of resource, but never the admin's own (deleting or re-passwording it would end
    // the admin session and leave the rest of the run anonymous).
    const adminId = String(JSON.parse(Buffer.from(admin.split('.')[1]!, 'base64url').toString()).user_id)
    const ids = [
      ...new Set([String(victim.json.id), String(group.json?.id), String(listed.json?.id), '1', '2', '34'])
    ].filter((id) => id !== adminId && id !== 'undefined')

    const docResponse = await api('GET', '/docs/json')
    t.equal(docResponse.status, 200, 'the merged OpenAPI document is served')
    const operations = operationsOf(docResponse.json)
    // Every answer is also held to the document: a raw path that matches an operation's template gets the
    // whole check (status documented for that operation, body schema, required headers); one that matches
    // none (a malformed path, answered 404 before any routing) only a documented status in the DRF shape.
    const checker = new OpenApiChecker(docResponse.json)
    t.ok(operations.length >= 30, `${operations.length} operations in the merged document`)

    const who: Identities = { admin, user: userLogin.json.access, spareAdmin, spareUser, ids, port }
    const failures = new Map<string, { operations: Set<string>; examples: string[] }>()
    let sent = 0
    let failed = 0
    const send = async (op: Operation, request: HostileRequest) => {
      const wire = buildRequest(request.method, request.target, request.headers, request.body)
      sent++
      let what: string | undefined
      let answer = ''
      try {
        // Generous for a loaded machine; an answer that never comes is a failure of its own.
        const res = await rawRequest(port, wire, { timeoutMs: ANSWER_TIMEOUT_MS })
        what = problem(res)
        if (what === undefined) {
          const path = request.target.toString('latin1')
          const undocumented = checker.check({
            method: request.method,
            path,
            status: res.status,
            headers: res.headers,
            text: res.body.toString('utf8')
          })
          // Grouped by what is wrong, with the operation's template (not the hostile path) in the class.
          if (undocumented.length > 0)
            what = `not as documented (${checker.template(path) ?? 'no operation'}): ${undocumented[0]!.slice(0, 200)}`
        }
        if (what !== undefined) answer = `${res.status} ${show(res.body, 200)}`
      } catch (error) {
        what = `no answer (${(error as Error).message})`
      }
      if (what !== undefined) {
        const entry = failures.get(what) ?? { operations: new Set<string>(), examples: [] as string[] }
        entry.operations.add(`${op.method} ${op.path}`)
        if (entry.examples.length < 2) entry.examples.push(`${show(wire, 300)} → ${answer || 'nothing'}`)
        failures.set(what, entry)
        failed++
      }
    }
    // Reads and writes first, deletions after them; within each phase a few requests at a time, so that one
    // request left hanging by a server does not hold up the rest.
    for (const phase of [
      operations.filter((op) => op.method !== 'DELETE'),
      operations.filter((op) => op.method === 'DELETE')
    ]) {
      const queue = phase.flatMap((op) =>
        fc
          .sample(requests(op, who), { seed: SEED + operations.indexOf(op), numRuns: RUNS_PER_OPERATION })
          .map((request) => [op, request] as const)
      )
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          for (let next = queue.shift(); next !== undefined; next = queue.shift()) await send(...next)
        })
      )
    }

    // The gateway and every service are still there after all of it.
    // (The admin's own record: the fuzzed deletions may have removed any other row.)
    const after = await api('GET', `/api/users/${adminId}/`, { token: admin })
    t.equal(after.status, 200, `still serving (${after.text.slice(0, 200)})`)
    for (const service of system.services) t.ok(system.isRunning(service), `${service} is still running`)

    t.comment(`requests fuzzed: ${sent} over ${operations.length} operations (seed ${SEED})`)
    const report = [...failures].map(
      ([what, { operations, examples }]) =>
        `${what}: ${operations.size} operations (${[...operations].slice(0, 4).join(', ')}${operations.size > 4 ? ', …' : ''})\n    e.g. ${examples.join('\n    e.g. ')}`
    )
    if (report.length > 0) t.comment(`${failed} of ${sent} answers broke the contract:\n${report.join('\n')}`)
    t.same(report, [], 'no 5xx, no missing answer, and every answer JSON in the DRF shape')
  }
)
