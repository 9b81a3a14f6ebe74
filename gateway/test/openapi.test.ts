import { createRequire } from 'node:module'
import t from 'tap'
import { PUBLIC_ROUTES, openApiPath } from '@roster/contracts'
import { docsSystem } from './docs-system.js'

// The kit's own Ajv (the gateway does not depend on it), to check that every example fits its schema.
const kitRequire = createRequire(new URL('../../packages/service-kit/package.json', import.meta.url))
const Ajv = kitRequire('ajv').default
const addFormats = kitRequire('ajv-formats').default

const METHODS = ['get', 'post', 'put', 'patch', 'delete']
const CJK = /[\u4e00-\u9fff]/

type Json = Record<string, any>

function resolve(doc: Json, node: Json): Json {
  let s = node
  for (let i = 0; i < 10 && typeof s?.$ref === 'string'; i++)
    s = s.$ref
      .slice(2)
      .split('/')
      .reduce((o: Json, k: string) => o?.[k], doc)
  return s
}

function operations(doc: Json) {
  const out: { method: string; path: string; op: Json }[] = []
  for (const [path, item] of Object.entries<Json>(doc.paths)) {
    for (const [method, op] of Object.entries<Json>(item))
      if (METHODS.includes(method) && path.startsWith('/api')) out.push({ method, path, op })
  }
  return out
}

/** OpenAPI 3.0's `nullable` as JSON Schema, and `#/components` refs into the document registered as `doc`. */
function toJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toJsonSchema)
  if (!node || typeof node !== 'object') return node
  const out: Json = {}
  for (const [key, value] of Object.entries(node)) {
    if (key === 'example' || key === 'examples') continue
    if (key === '$ref') out.$ref = `doc${value}`
    else if (key === 'properties')
      out.properties = Object.fromEntries(Object.entries<Json>(value).map(([k, v]) => [k, toJsonSchema(v)]))
    else out[key] = toJsonSchema(value)
  }
  if (out.nullable === true) {
    delete out.nullable
    return { anyOf: [out, { type: 'null' }] }
  }
  delete out.nullable
  return out
}

t.test('the merged OpenAPI document is one generated clients can trust', async (t) => {
  const { doc, gateway } = await docsSystem(t)
  const ops = operations(doc)

  t.test('operations: exactly the route table, each with its operationId and a bilingual summary', async (t) => {
    t.same(
      ops.map((o) => `${o.method.toUpperCase()} ${o.path} ${o.op.operationId}`).sort(),
      PUBLIC_ROUTES.map((r) => `${r.method} ${openApiPath(r.path)} ${r.operationId}`).sort()
    )
    const ids = ops.map((o) => o.op.operationId)
    t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
    t.ok(
      ids.every((id) => /^[a-z][A-Za-z]+$/.test(id)),
      'camelCase'
    )
    for (const { method, path, op } of ops) {
      const route = PUBLIC_ROUTES.find((r) => r.method === method.toUpperCase() && openApiPath(r.path) === path)!
      t.ok(
        op.summary.includes(route.title) && CJK.test(op.summary) && /[a-z]{3}/.test(op.summary),
        `${op.operationId}: ${op.summary}`
      )
      t.ok(
        (op.parameters ?? []).some((p: Json) => p.$ref === '#/components/parameters/AcceptLanguage'),
        `${op.operationId} refers to Accept-Language`
      )
    }
    t.equal(doc.components.parameters.AcceptLanguage.in, 'header')
    t.ok(doc.servers?.length > 0 && doc.info.contact?.name && doc.info.license?.name, 'servers, contact and license')
  })

  t.test('path ids are integers', async (t) => {
    let count = 0
    for (const { op } of ops) {
      for (const p of (op.parameters ?? []).map((p: Json) => resolve(doc, p))) {
        if (p.in !== 'path') continue
        count++
        t.match(p.schema, { type: 'integer', minimum: 1, maximum: 2147483647 }, `${op.operationId} {${p.name}}`)
      }
    }
    t.equal(count, 24, 'all 24 path parameters')
  })

  t.test('request bodies are named components with examples that fit them', async (t) => {
    const bodies = ops.filter((o) => o.op.requestBody)
    t.equal(bodies.length, 15)
    for (const { op } of bodies) {
      const media = op.requestBody.content['application/json']
      t.match(media.schema.$ref, /^#\/components\/schemas\/[A-Z]\w+$/, `${op.operationId} body is a $ref`)
      t.not(media.example, undefined, `${op.operationId} body has an example`)
      for (const code of ['400', '413', '415']) t.ok(op.responses[code], `${op.operationId} documents ${code}`)
    }
    for (const name of [
      'UserCreate',
      'UserUpdate',
      'UserPatch',
      'ProfileInput',
      'ProfilePatch',
      'GroupWrite',
      'GroupPatch',
      'GroupProfileInput',
      'OccupationWrite',
      'OccupationPatch',
      'LoginRequest',
      'RefreshRequest',
      'BlackListCreate',
      'BlackListUpdate',
      'BlackListPatch',
      'GroupMembersAdd'
    ]) {
      t.ok(doc.components.schemas[name], `components.schemas.${name}`)
    }
    t.same(
      bodies.find((o) => o.op.operationId === 'registerUser')!.op.requestBody.content['application/json'].example
        .profile.identify_id,
      '100000190001010001',
      "registration's example is the Chinese API document's"
    )
  })

  const ajv = new Ajv({ strict: false, allErrors: true })
  addFormats(ajv)
  ajv.addSchema({ $id: 'doc', components: toJsonSchema({ schemas: doc.components.schemas }) })

  t.test('every answer is described, carries the common headers and has an example that fits its schema', async (t) => {
    const fits = (schema: Json, example: unknown) => {
      const validate = ajv.compile(toJsonSchema(schema) as Json)
      return validate(example) ? '' : ajv.errorsText(validate.errors)
    }
    let answers = 0
    for (const { op } of ops) {
      const body = op.requestBody?.content['application/json']
      if (body) t.equal(fits(body.schema, body.example), '', `${op.operationId} body example fits`)
      for (const [code, raw] of Object.entries<Json>(op.responses)) {
        answers++
        const response = resolve(doc, raw)
        const where = `${op.operationId} ${code}`
        t.ok(response.description && response.description !== 'Default Response', `${where} is described`)
        t.ok(response.headers?.['X-Request-Id'], `${where} has X-Request-Id`)
        const media = response.content?.['application/json']
        if (!media) continue
        const examples =
          media.example !== undefined ? [media.example] : Object.values<Json>(media.examples ?? {}).map((e) => e.value)
        t.ok(examples.length > 0, `${where} has an example`)
        for (const example of examples) t.equal(fits(media.schema, example), '', `${where} example fits its schema`)
      }
      const secured = !(Array.isArray(op.security) && op.security.length === 0)
      if (secured)
        t.ok(
          resolve(doc, op.responses['401'] ?? {}).headers?.['WWW-Authenticate'],
          `${op.operationId} 401 has WWW-Authenticate`
        )
      for (const code of ['429', '503'])
        t.ok(resolve(doc, op.responses[code]).headers['Retry-After'], `${op.operationId} ${code} has Retry-After`)
      for (const code of ['405', '500']) t.ok(op.responses[code], `${op.operationId} documents ${code}`)
      if (op.parameters.some((p: Json) => resolve(doc, p).in === 'path'))
        t.ok(op.responses['404'], `${op.operationId} documents 404`)
      const ok = op.responses['200']
      if (ok?.content?.['application/json']?.schema?.type === 'array') {
        t.ok(ok.headers['X-Total-Count'] && ok.headers.Link, `${op.operationId} list has X-Total-Count and Link`)
      }
    }
    t.ok(answers > 37 * 4, `${answers} answers checked`)
  })

  t.test('what can be null is nullable in a way OpenAPI 3.0 generators understand', async (t) => {
    const schemas = doc.components.schemas
    for (const name of ['User', 'Group']) {
      t.same(
        schemas[name].properties.profile,
        {
          anyOf: [
            { $ref: `#/components/schemas/${name === 'User' ? 'Profile' : 'GroupProfile'}` },
            { type: 'object', nullable: true, enum: [null] }
          ]
        },
        `${name}.profile`
      )
    }
    const nullable: Record<string, string[]> = {
      Profile: ['occupation', 'creator', 'modifier'],
      GroupProfile: ['creator', 'modifier'],
      UserLog: ['user', 'operator'],
      UserGroupRow: ['location', 'contact_phone'],
      ProfileInput: ['occupation']
    }
    for (const [name, fields] of Object.entries(nullable)) {
      for (const field of fields) t.equal(schemas[name].properties[field].nullable, true, `${name}.${field}`)
    }
    const notNullable = ['id', 'username', 'email', 'is_staff', 'is_active']
    for (const field of notNullable) t.notOk(schemas.User.properties[field].nullable, `User.${field} is never null`)
    const nullOk = (schema: Json, value: unknown) => ajv.compile(toJsonSchema(schema) as Json)(value)
    t.ok(
      nullOk(schemas.User.properties.profile, null) && nullOk(schemas.User.properties.profile, schemas.Profile.example),
      'profile: null or a Profile'
    )
    t.notOk(nullOk(schemas.User.properties.profile, { name: 1 }), 'but not anything else')
    const nullableWithoutType: string[] = []
    const siblings: string[] = []
    const walk = (node: unknown, where: string) => {
      if (!node || typeof node !== 'object') return
      if ((node as Json).$ref && Object.keys(node).length > 1) siblings.push(where)
      for (const [k, v] of Object.entries(node)) walk(v, `${where}/${k}`)
    }
    walk(doc, '#')
    t.same(siblings, [], 'no $ref has siblings (OpenAPI 3.0 ignores them)')
    const typed = (node: unknown, where: string) => {
      if (!node || typeof node !== 'object') return
      if ((node as Json).nullable === true && !(node as Json).type) nullableWithoutType.push(where)
      for (const [k, v] of Object.entries(node)) typed(v, `${where}/${k}`)
    }
    typed(doc, '#')
    t.same(nullableWithoutType, [], '`nullable` always has a `type` beside it (OpenAPI 3.0.3)')
  })

  t.test('constraints are the ones the server enforces', async (t) => {
    const create = doc.components.schemas.UserCreate.properties
    t.match(create.password, { minLength: 2, maxLength: 72, pattern: '[^0-9]', writeOnly: true })
    t.match(create.email.anyOf, [{ format: 'email', maxLength: 254 }, { maxLength: 0 }])
    t.match(doc.components.schemas.ProfileInput.properties.identify_id, {
      minLength: 18,
      maxLength: 18,
      pattern: '^[0-9]{17}[0-9X]$'
    })
    t.match(doc.components.schemas.ProfileInput.properties.phone, { pattern: '^(1[3-9][0-9]{9})?$' })
  })

  t.test('the answers the document promises are the ones the server gives', async (t) => {
    const common = (res: { headers: Record<string, unknown> }, where: string) =>
      t.ok(res.headers['x-request-id'], `${where}: X-Request-Id`)
    const wrongMethod = await gateway.inject({ method: 'PUT', url: '/api/users/' })
    t.equal(wrongMethod.statusCode, 405)
    t.match(wrongMethod.json(), { detail: String })
    common(wrongMethod, '405')
    const anonymous = await gateway.inject({ method: 'GET', url: '/api/users/' })
    t.equal(anonymous.statusCode, 401)
    t.match(anonymous.headers['www-authenticate'], /^Bearer/)
    common(anonymous, '401')
    const text = await gateway.inject({
      method: 'POST',
      url: '/api/users/',
      headers: { 'content-type': 'text/plain' },
      payload: 'username=x'
    })
    t.equal(text.statusCode, 415)
    common(text, '415')
    const big = await gateway.inject({
      method: 'POST',
      url: '/api/users/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ username: 'x', password: 'y'.repeat(2 * 1024 * 1024) })
    })
    t.equal(big.statusCode, 413)
    common(big, '413')
    const example = doc.paths['/api/users/'].post.requestBody.content['application/json'].example
    const registered = await gateway.inject({
      method: 'POST',
      url: '/api/users/',
      payload: { ...example, profile: { ...example.profile, occupation: null } }
    })
    t.equal(registered.statusCode, 200, `the registration example registers: ${registered.body}`)
    t.equal(registered.json().profile.identify_id, example.profile.identify_id)
  })
})

t.test('a 503 says when to try again, as documented', async (t) => {
  const { gateway } = await docsSystem(t, { downstream: false })
  const res = await gateway.inject({ method: 'GET', url: '/api/groups/' })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '1')
  t.match(res.json(), { detail: String })
})

t.test("a service's own 503 (its dependency unreachable) says when to try again too", async (t) => {
  const { build, login, bearer, ADMIN } = await import('@roster/identity/testing')
  // A directory that cannot be reached: a replica miss is a read-through that fails, a 503 from the kit.
  const identity = await build(t, { DIRECTORY_INTERNAL_URL: 'http://127.0.0.1:9' })
  const { access } = await login(identity, ADMIN.username, ADMIN.password)
  const res = await identity.inject({ method: 'GET', url: '/api/groups/5/users/', headers: bearer(access) })
  t.equal(res.statusCode, 503, res.body)
  t.equal(res.headers['retry-after'], '1')
})
