import t from 'tap'
import { build } from './helper.js'

t.test('hostile values in the directory: 400 in the DRF shape, text trimmed as in every service', async (t) => {
  const { app, admin } = await build(t)
  for (const url of ['/api/groups/?search=a%00b', '/api/occupations/?search=a%00b', '/api/groups/?search=%00']) {
    const res = await app.inject({ url, headers: admin.headers })
    t.equal(res.statusCode, 400, url)
    t.same(res.json(), { search: ['不允许包含空字符。'] }, url)
  }
  for (const url of ['/api/groups/?limit=1e309', '/api/occupations/?offset=-1e400']) {
    const res = await app.inject({ url, headers: admin.headers })
    t.equal(res.statusCode, 400, url)
  }
  const post = (url: string, text: string) =>
    app.inject({
      method: 'POST',
      url,
      headers: { ...admin.headers, 'content-type': 'application/json' },
      payload: text
    })
  const surrogate = await post('/api/groups/', '{"name":"ward\\ud800"}')
  t.equal(surrogate.statusCode, 400)
  t.same(surrogate.json(), { name: ['包含无效的 Unicode 字符。'] })
  const deep = await post('/api/occupations/', `{"name":${'['.repeat(100_000)}${']'.repeat(100_000)}}`)
  t.equal(deep.statusCode, 400)
  const created = await post('/api/occupations/', '{"name":"  护士  "}')
  t.ok(created.statusCode >= 200 && created.statusCode < 300, created.body)
  t.equal(created.json().name, '护士')
  const path = await app.inject({ url: '/api/groups/1%00/', headers: admin.headers })
  t.equal(path.statusCode, 404)
})
