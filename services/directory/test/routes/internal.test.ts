import t from 'tap'
import { INTERNAL_PATHS } from '@roster/contracts'
import { injectInternal, listenInternal } from '@roster/service-kit'
import { build } from '../helper.js'

t.test(
  'internal read-through answers the facts events carry, without a token, on the internal listener only',
  async (t) => {
    const { app, admin } = await build(t)
    const internal = (url: string) => injectInternal(app, url)
    const group = (
      await app.inject({ method: 'POST', url: '/api/groups/', headers: admin.headers, payload: { name: 'ward' } })
    ).json()
    const occupation = (
      await app.inject({
        method: 'POST',
        url: '/api/occupations/',
        headers: admin.headers,
        payload: { name: 'porter' }
      })
    ).json()

    const g1 = await internal(INTERNAL_PATHS.group(group.id))
    t.equal(g1.statusCode, 200)
    t.same(g1.json(), { group_id: group.id, version: 1, name: 'ward', location: null, contact_phone: null })

    await app.inject({
      method: 'PATCH',
      url: `/api/groups/${group.id}/`,
      headers: admin.headers,
      payload: { profile: { location: '3F', contact_phone: '8888' } }
    })
    const g2 = await internal(INTERNAL_PATHS.group(group.id))
    t.same(g2.json(), { group_id: group.id, version: 2, name: 'ward', location: '3F', contact_phone: '8888' })

    const o1 = await internal(INTERNAL_PATHS.occupation(occupation.id))
    t.same(o1.json(), { occupation_id: occupation.id, version: 1, name: 'porter' })
    await app.inject({
      method: 'PUT',
      url: `/api/occupations/${occupation.id}/`,
      headers: admin.headers,
      payload: { name: 'head porter' }
    })
    t.same((await internal(INTERNAL_PATHS.occupation(occupation.id))).json(), {
      occupation_id: occupation.id,
      version: 2,
      name: 'head porter'
    })

    for (const url of [
      INTERNAL_PATHS.group(999999),
      INTERNAL_PATHS.occupation(999999),
      '/internal/groups/abc',
      '/internal/occupations/0'
    ]) {
      const res = await internal(url)
      t.equal(res.statusCode, 404, url)
      t.same(res.json(), { detail: '未找到。' })
    }
    await app.inject({ method: 'DELETE', url: `/api/groups/${group.id}/`, headers: admin.headers })
    t.equal((await internal(INTERNAL_PATHS.group(group.id))).statusCode, 404, 'a deleted group is gone')

    for (const method of ['GET', 'HEAD', 'POST', 'DELETE'] as const) {
      const res = await app.inject({ method, url: INTERNAL_PATHS.occupation(occupation.id) })
      t.equal(res.statusCode, 404, `${method} of an internal path on the public listener is an unknown path`)
      t.notOk(res.headers.allow, 'and names no method')
    }

    const docs = (await internal('/docs/json')).json()
    t.notOk(
      Object.keys(docs.paths).some((p) => p.startsWith('/internal')),
      'internal paths are not documented'
    )
  }
)

t.test('over real sockets: the public port 404s every internal route, the internal port answers them', async (t) => {
  const { app, admin } = await build(t)
  const occupation = (
    await app.inject({ method: 'POST', url: '/api/occupations/', headers: admin.headers, payload: { name: 'porter' } })
  ).json()
  const publicUrl = await app.listen({ host: '127.0.0.1', port: 0 })
  const internalUrl = await listenInternal(app, { host: '127.0.0.1', port: 0 })
  t.not(publicUrl, internalUrl)

  const internalPaths = [
    INTERNAL_PATHS.occupation(occupation.id),
    '/metrics',
    '/ready',
    '/docs/json',
    '/docs/',
    '/docs/yaml'
  ]
  for (const path of internalPaths) {
    const outside = await fetch(publicUrl + path)
    t.equal(outside.status, 404, `public ${path}`)
    t.same(await outside.json(), { detail: '未找到。' }, `public ${path} in the DRF shape`)
    const inside = await fetch(internalUrl + path)
    t.equal(inside.status, 200, `internal ${path}`)
    await inside.body?.cancel()
  }
  t.same(await (await fetch(internalUrl + INTERNAL_PATHS.occupation(occupation.id))).json(), {
    occupation_id: occupation.id,
    version: 1,
    name: 'porter'
  })
  for (const url of [publicUrl, internalUrl]) t.equal((await fetch(`${url}/health`)).status, 200, `liveness on ${url}`)
  t.equal(
    (await fetch(`${publicUrl}/api/occupations/${occupation.id}/`, { headers: admin.headers })).status,
    200,
    'the API on the public port'
  )

  await app.close()
  t.equal(app.internalServer, null, 'closing the app closes the internal listener')
  await t.rejects(fetch(`${internalUrl}/health`), 'nothing listens there any more')
})
