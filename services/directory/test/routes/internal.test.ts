import t from 'tap'
import { INTERNAL_PATHS } from '@roster/contracts'
import { build } from '../helper.js'

t.test('internal read-through answers the facts events carry, without a token', async (t) => {
  const { app, admin } = await build(t)
  const group = (await app.inject({ method: 'POST', url: '/api/groups/', headers: admin.headers, payload: { name: 'ward' } })).json()
  const occupation = (await app.inject({ method: 'POST', url: '/api/occupations/', headers: admin.headers, payload: { name: 'porter' } })).json()

  const g1 = await app.inject({ method: 'GET', url: INTERNAL_PATHS.group(group.id) })
  t.equal(g1.statusCode, 200)
  t.same(g1.json(), { group_id: group.id, version: 1, name: 'ward', location: null, contact_phone: null })

  await app.inject({ method: 'PATCH', url: `/api/groups/${group.id}/`, headers: admin.headers, payload: { profile: { location: '3F', contact_phone: '8888' } } })
  const g2 = await app.inject({ method: 'GET', url: INTERNAL_PATHS.group(group.id) })
  t.same(g2.json(), { group_id: group.id, version: 2, name: 'ward', location: '3F', contact_phone: '8888' })

  const o1 = await app.inject({ method: 'GET', url: INTERNAL_PATHS.occupation(occupation.id) })
  t.same(o1.json(), { occupation_id: occupation.id, version: 1, name: 'porter' })
  await app.inject({ method: 'PUT', url: `/api/occupations/${occupation.id}/`, headers: admin.headers, payload: { name: 'head porter' } })
  t.same((await app.inject({ method: 'GET', url: INTERNAL_PATHS.occupation(occupation.id) })).json(), {
    occupation_id: occupation.id,
    version: 2,
    name: 'head porter'
  })

  for (const url of [INTERNAL_PATHS.group(999999), INTERNAL_PATHS.occupation(999999), '/internal/groups/abc', '/internal/occupations/0']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 404, url)
    t.same(res.json(), { detail: '未找到。' })
  }
  await app.inject({ method: 'DELETE', url: `/api/groups/${group.id}/`, headers: admin.headers })
  t.equal((await app.inject({ method: 'GET', url: INTERNAL_PATHS.group(group.id) })).statusCode, 404, 'a deleted group is gone')

  const docs = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  t.notOk(Object.keys(docs.paths).some((p) => p.startsWith('/internal')), 'internal paths are not documented')
})
