import t from 'tap'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { Nullable, PaginationQuerySchema, passwordCheck } from '@roster/contracts'
import { errorsPlugin } from '../src/plugins/errors.js'
import { inputPlugin } from '../src/plugins/input.js'
import { validatorCompiler } from '../src/validation.js'
import { LIST_HEADERS, pageOf, parsePk, setPageHeaders } from '../src/pagination.js'
import { loadConfig, serviceConfigSchema } from '../src/config.js'

async function app() {
  const app = Fastify({ routerOptions: { ignoreTrailingSlash: true } })
  app.setValidatorCompiler(validatorCompiler({ password: passwordCheck }))
  await app.register(errorsPlugin)
  await app.register(inputPlugin)
  app.post(
    '/api/things/',
    {
      schema: {
        body: Type.Object({
          name: Type.String({ minLength: 1, maxLength: 5 }),
          code: Type.String({ pattern: '^[A-Z]+$', 'x-messages': { pattern: 'phone_invalid' } }),
          email: Type.Optional(Type.String({ format: 'email-or-empty' })),
          secret: Type.Optional(Type.String({ 'x-check': 'password' })),
          count: Type.Optional(Type.Integer({ minimum: 0, maximum: 9 })),
          flag: Type.Optional(Type.Boolean()),
          parent: Type.Optional(Nullable(Type.Integer())),
          nested: Type.Optional(Type.Object({ inner: Type.String() })),
          list: Type.Optional(Type.Array(Type.Integer()))
        })
      }
    },
    async (request) => request.body
  )
  app.get('/api/things/:pk/', async (request) => ({ id: parsePk((request.params as any).pk) }))
  app.get(
    '/api/list/',
    {
      schema: {
        querystring: PaginationQuerySchema,
        response: { 200: { type: 'array', items: { type: 'integer' }, headers: LIST_HEADERS } }
      }
    },
    async (request, reply) => {
      const page = pageOf(request.query as any)
      setPageHeaders(request, reply, 250, page)
      return [1]
    }
  )
  app.registerMethodNotAllowed()
  return app
}

t.test('Ajv errors become DRF field errors, all at once', async (t) => {
  const server = await app()
  const res = await server.inject({
    method: 'POST',
    url: '/api/things/',
    payload: {
      name: 'toolong',
      code: 'abc',
      email: 'x@',
      secret: '123',
      count: 10,
      flag: 'perhaps',
      nested: { inner: {} },
      list: 'x'
    }
  })
  t.equal(res.statusCode, 400)
  t.same(res.json(), {
    name: ['请确保这个字段不能超过 5 个字符。'],
    code: ['请输入合法的手机号码。'],
    email: ['请输入合法的邮件地址。'],
    secret: ['密码长度太短。密码必须包含至少 8 个字符。'],
    count: ['请确保该值小于或者等于 9。'],
    flag: ['必须是有效的布尔值。'],
    nested: { inner: ['不是有效的字符串。'] },
    list: ['期望为一个包含物件的列表，得到的类型是“str”。']
  })
  const ok = await server.inject({
    method: 'POST',
    url: '/api/things',
    payload: { name: 'a', code: 'A', email: '', parent: null }
  })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { name: 'a', code: 'A', email: '', parent: null }, 'null stays null: no coercion through anyOf')
  const nulls = await server.inject({
    method: 'POST',
    url: '/api/things/',
    payload: { name: null, code: 'A', flag: null, count: null }
  })
  t.same(
    nulls.json(),
    { name: ['该字段不能为 null。'], flag: ['该字段不能为 null。'], count: ['该字段不能为 null。'] },
    'null is never coerced'
  )
  const strings = await server.inject({
    method: 'POST',
    url: '/api/things/',
    payload: { name: 'a', code: 'A', count: '3' }
  })
  t.same(strings.json(), { count: ['请填写合法的整数值。'] }, 'bodies are JSON: a number is a number')
  const empty = await server.inject({
    method: 'POST',
    url: '/api/things/',
    headers: { 'content-type': 'application/json' },
    payload: ''
  })
  t.same(empty.json(), { name: ['该字段是必填项。'], code: ['该字段是必填项。'] }, 'an empty body reads as {}')
  const none = await server.inject({ method: 'POST', url: '/api/things/' })
  t.equal(none.statusCode, 400)
  const primitive = await server.inject({
    method: 'POST',
    url: '/api/things/',
    payload: '"text"',
    headers: { 'content-type': 'application/json' }
  })
  t.same(primitive.json(), { non_field_errors: ['无效数据。期待为字典类型，得到的是 str 。'] })
  const proto = await server.inject({
    method: 'POST',
    url: '/api/things/',
    payload: '{"__proto__": {"x": 1}, "name": "a", "code": "A"}',
    headers: { 'content-type': 'application/json' }
  })
  t.equal(proto.statusCode, 400, 'prototype poisoning is refused')
})

t.test('ids, 405 and pagination', async (t) => {
  const server = await app()
  t.equal((await server.inject({ method: 'GET', url: '/api/things/12/' })).json().id, 12)
  for (const bad of ['x', '0', '2147483648', '00000000000']) {
    t.equal((await server.inject({ method: 'GET', url: `/api/things/${bad}/` })).statusCode, 404, bad)
  }
  const put = await server.inject({ method: 'PUT', url: '/api/things/' })
  t.equal(put.statusCode, 405)
  t.equal(put.headers.allow, 'POST')
  const page = await server.inject({
    method: 'GET',
    url: '/api/list/?limit=100&offset=100',
    headers: { host: 'roster.example' }
  })
  t.equal(page.headers['x-total-count'], '250')
  t.equal(
    page.headers.link,
    '</api/list/?limit=100&offset=200>; rel="next", </api/list/?limit=100&offset=0>; rel="prev"'
  )
  // Never built from Host: an attacker's Host, an empty one, a path that would become `//evil.example`.
  for (const [url, host] of [
    ['/api/list/?offset=100&search=x', 'evil.example'],
    ['/api/list/?offset=100', ''],
    ['/api/list/?offset=100&q=%3E%22', 'roster.example']
  ]) {
    const res = await server.inject({ method: 'GET', url, headers: { host } })
    t.equal(res.statusCode, 200, url)
    const link = String(res.headers.link)
    t.notMatch(link, /evil|127\.0\.0\.1|localhost|http:|\/\//, `${url} with Host ${JSON.stringify(host)}: ${link}`)
    t.match(link, /^<\/api\/list\/\?[^<>"]*>; rel="next", <\/api\/list\/\?[^<>"]*>; rel="prev"$/)
  }
  // A path the router reached with repeated slashes never becomes a network-path reference.
  const headers: Record<string, string> = {}
  const reply = { header: (name: string, value: string) => (headers[name] = value) }
  setPageHeaders({ url: '//evil.example//api/list/?offset=100' } as any, reply as any, 250, { limit: 100, offset: 100 })
  t.equal(
    headers.link,
    '</evil.example/api/list/?offset=200&limit=100>; rel="next", </evil.example/api/list/?offset=0&limit=100>; rel="prev"'
  )
  const last = await server.inject({ method: 'GET', url: '/api/list/?offset=200' })
  t.notMatch(last.headers.link, /next/)
})

t.test('configuration is validated once', async (t) => {
  const schema = serviceConfigSchema({})
  const config = loadConfig(schema, {}, { PORT: '4000', NATS_PREFIX: 'abc', UNRELATED: 'x' })
  t.equal(config.PORT, 4000)
  t.equal(config.HOST, '127.0.0.1')
  t.equal(config.NATS_PREFIX, 'abc')
  t.throws(() => loadConfig(schema, {}, { PORT: 'eighty' }), /PORT/)
  t.throws(() => loadConfig(schema, {}, { NATS_PREFIX: 'a.b' }), /NATS_PREFIX/)
  t.throws(() => loadConfig(schema, {}, { LOG_LEVEL: 'loud' }), /LOG_LEVEL/)
})

t.test('a missing database is created at start-up', async (t) => {
  const { ensureDatabase } = await import('../src/plugins/orm.js')
  const pg = (await import('pg')).default
  const name = `roster_new_${Date.now()}`
  const url = `postgres://postgres@127.0.0.1:5432/${name}`
  const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' })
  await admin.connect()
  t.after(async () => {
    await admin.query(`drop database if exists "${name}"`)
    await admin.end()
  })
  await Promise.all([ensureDatabase(url), ensureDatabase(url)])
  const found = await admin.query('select 1 from pg_database where datname = $1', [name])
  t.equal(found.rowCount, 1)
  await ensureDatabase(url)
})
