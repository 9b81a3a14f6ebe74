import t from 'tap'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { errorsPlugin } from '../src/plugins/errors.js'
import { inputPlugin } from '../src/plugins/input.js'
import { validatorCompiler, MAX_JSON_DEPTH } from '../src/validation.js'

async function app() {
  const app = Fastify({ routerOptions: { ignoreTrailingSlash: true } })
  app.setValidatorCompiler(validatorCompiler({}))
  await app.register(errorsPlugin)
  await app.register(inputPlugin)
  app.post(
    '/api/things/',
    {
      schema: {
        body: Type.Object({
          name: Type.String({ minLength: 1, maxLength: 5 }),
          password: Type.Optional(Type.String()),
          count: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647 })),
          nested: Type.Optional(Type.Object({ inner: Type.String() })),
          extra: Type.Optional(Type.Unknown())
        })
      }
    },
    async (request) => request.body
  )
  app.get(
    '/api/things/',
    {
      schema: {
        querystring: Type.Object({
          search: Type.Optional(Type.String({ maxLength: 10 })),
          n: Type.Optional(Type.Integer({ maximum: 2147483647 })),
          flag: Type.Optional(Type.Boolean())
        })
      }
    },
    async (request) => request.query
  )
  app.get('/api/things/:pk/', async (request) => request.params)
  return app
}

const post = (server: Awaited<ReturnType<typeof app>>, text: string) =>
  server.inject({ method: 'POST', url: '/api/things/', headers: { 'content-type': 'application/json' }, payload: text })

t.test('text fields are trimmed as DRF CharField does; passwords are taken as sent', async (t) => {
  const server = await app()
  const res = await post(server, JSON.stringify({ name: '  abc \n', password: ' pass ', nested: { inner: ' x ' } }))
  t.equal(res.statusCode, 200)
  t.same(res.json(), { name: 'abc', password: ' pass ', nested: { inner: 'x' } })
  const blank = await post(server, JSON.stringify({ name: '   ' }))
  t.equal(blank.statusCode, 400)
  t.same(blank.json(), { name: ['该字段不能为空。'] })
})

t.test('NUL and lone surrogates in a JSON body are field errors, wherever they are', async (t) => {
  const server = await app()
  for (const [text, expected] of [
    ['{"name":"ab\\u0000c"}', { name: ['不允许包含空字符。'] }],
    ['{"name":"victim\\ud800"}', { name: ['包含无效的 Unicode 字符。'] }],
    ['{"name":"\\udc00x"}', { name: ['包含无效的 Unicode 字符。'] }],
    ['{"name":"a","nested":{"inner":"\\ud83d"}}', { nested: { inner: ['包含无效的 Unicode 字符。'] } }],
    ['{"name":"a","extra":["ok","\\ud800"]}', { extra: { 1: ['包含无效的 Unicode 字符。'] } }],
    ['{"name":"a","\\ud800":1}', { non_field_errors: ['包含无效的 Unicode 字符。'] }],
    ['"\\ud800"', { non_field_errors: ['包含无效的 Unicode 字符。'] }]
  ] as const) {
    const res = await post(server, text)
    t.equal(res.statusCode, 400, text)
    t.same(res.json(), expected, text)
  }
  // A well-formed pair (an emoji) is fine.
  const ok = await post(server, '{"name":"\\ud83d\\ude00"}')
  t.equal(ok.statusCode, 200)
  t.equal(ok.json().name, '😀')
})

t.test('numbers that are not finite or out of range are 400, never passed on', async (t) => {
  const server = await app()
  for (const n of ['1e309', '-1e309', '1e400']) {
    const res = await post(server, `{"name":"a","count":${n}}`)
    t.equal(res.statusCode, 400, n)
    t.same(res.json(), { count: ['请填写合法的数字。'] }, n)
    const unknown = await post(server, `{"name":"a","extra":{"deep":[${n}]}}`)
    t.equal(unknown.statusCode, 400, `${n} in an unchecked field`)
  }
  for (const n of ['9007199254740993', '2147483648', '1e20']) {
    const res = await post(server, `{"name":"a","count":${n}}`)
    t.equal(res.statusCode, 400, n)
    t.same(res.json(), { count: ['请确保该值小于或者等于 2147483647。'] }, n)
  }
})

t.test('deep nesting is refused without a stack overflow; long strings hit maxLength', async (t) => {
  const server = await app()
  const depth = 200_000
  const deep = await post(server, `{"name":"a","extra":${'['.repeat(depth)}${']'.repeat(depth)}}`)
  t.equal(deep.statusCode, 400)
  t.same(deep.json(), { extra: [`嵌套层级过深，不能超过 ${MAX_JSON_DEPTH} 层。`] })
  const shallow = await post(server, `{"name":"a","extra":${'['.repeat(10)}${']'.repeat(10)}}`)
  t.equal(shallow.statusCode, 200)
  const long = await post(server, JSON.stringify({ name: 'x'.repeat(500_000) }))
  t.equal(long.statusCode, 400)
  t.same(long.json(), { name: ['请确保这个字段不能超过 5 个字符。'] })
})

t.test('query values: NUL and lone surrogates are field errors, values trimmed, numbers ranged', async (t) => {
  const server = await app()
  for (const url of ['/api/things/?search=a%00b', '/api/things/?search=%00']) {
    const res = await server.inject({ url })
    t.equal(res.statusCode, 400, url)
    t.same(res.json(), { search: ['不允许包含空字符。'] }, url)
  }
  const res = await server.inject({ url: '/api/things/?search=%20abc%20' })
  t.same(res.json(), { search: 'abc' })
  const proto = await server.inject({ url: '/api/things/?__proto__=a&__proto__=b&search=x' })
  t.equal(proto.statusCode, 200)
  t.equal(proto.json().search, 'x')
  t.same(
    Object.keys(proto.json()).sort(),
    ['__proto__', 'search'],
    'a parameter named __proto__ is data, not a prototype'
  )
  const unknownName = await server.inject({ url: '/api/things/?a%00=1' })
  t.equal(unknownName.statusCode, 400)
  for (const n of ['1e309', '9007199254740993', 'Infinity', '-1e400', 'NaN', '-Infinity']) {
    const big = await server.inject({ url: `/api/things/?n=${n}` })
    t.equal(big.statusCode, 400, n)
  }
})

t.test('query integers are decimal, query booleans as django-filter reads them', async (t) => {
  const server = await app()
  for (const n of ['0x10', '0X10', '1e1', '1E1', '0b11', '0o7', '1.5', '1_000', '--1', '1 2', '', '１', '٣']) {
    const res = await server.inject({ url: `/api/things/?n=${encodeURIComponent(n)}` })
    t.equal(res.statusCode, 400, JSON.stringify(n))
    t.same(res.json(), { n: ['请填写合法的整数值。'] }, JSON.stringify(n))
  }
  const twice = await server.inject({ url: '/api/things/?n=0x1&n=0x2' })
  t.same(twice.json(), { n: ['请填写合法的整数值。'] }, 'one message for a repeated parameter')
  for (const [n, value] of [
    ['7', 7],
    ['+7', 7],
    ['-7', -7],
    ['007', 7],
    ['7.0', 7],
    ['7.', 7],
    [' 7 ', 7]
  ] as const) {
    const res = await server.inject({ url: `/api/things/?n=${encodeURIComponent(n)}` })
    t.same(res.json(), { n: value }, JSON.stringify(n))
  }
  for (const [flag, value] of [
    ['true', true],
    ['True', true],
    ['TRUE', true],
    ['1', true],
    ['false', false],
    ['False', false],
    ['0', false]
  ] as const) {
    const res = await server.inject({ url: `/api/things/?flag=${flag}` })
    t.same(res.json(), { flag: value }, flag)
  }
  for (const flag of ['yes', 'on', '2', '', 'null', 'truee']) {
    const res = await server.inject({ url: `/api/things/?flag=${flag}` })
    t.equal(res.statusCode, 400, flag)
    t.same(res.json(), { flag: ['必须是有效的布尔值。'] }, flag)
  }
  t.same((await server.inject({ url: '/api/things/?search=0x10' })).json(), { search: '0x10' }, 'text is text')
})

t.test('path parameters with NUL or lone surrogates are 404', async (t) => {
  const server = await app()
  const res = await server.inject({ url: '/api/things/a%00b/' })
  t.equal(res.statusCode, 404)
  t.same(res.json(), { detail: '未找到。' })
  const ok = await server.inject({ url: '/api/things/7/' })
  t.same(ok.json(), { pk: '7' })
  const spaced = await server.inject({ url: '/api/things/%207/' })
  t.same(spaced.json(), { pk: ' 7' }, 'path parameters are not trimmed: ` 7` is not the id 7')
})

t.test('a JSON body that is not valid UTF-8 is a parse error, never stored with replacement characters', async (t) => {
  const server = await app()
  for (const bytes of [
    Buffer.from([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    Buffer.from('{"name":"\xed\xa0\x80"}', 'latin1'),
    Buffer.from('{"name":"\xc0\xaf"}', 'latin1')
  ]) {
    const res = await server.inject({
      method: 'POST',
      url: '/api/things/',
      headers: { 'content-type': 'application/json' },
      payload: bytes
    })
    t.equal(res.statusCode, 400)
    t.match(res.json(), { detail: /UTF-8/, non_field_errors: [/UTF-8/] })
  }
  const chinese = await server.inject({
    method: 'POST',
    url: '/api/things/',
    headers: { 'content-type': 'application/json' },
    payload: Buffer.from('{"name":"张三"}')
  })
  t.equal(chinese.statusCode, 200)
  t.equal(chinese.json().name, '张三')
})
