import t from 'tap'
import { startE2E, client, ADMIN } from './helper.js'

// It starts the services as processes: a budget of its own that fits a machine twice as slow as a loaded
// one of this kind (tap's default of 120 s per file does not).
t.setTimeout(300_000)

t.test('the seed document flow through the gateway', async (t) => {
  const system = await startE2E(t, ['identity', 'directory', 'gateway'])
  const api = client(system.gatewayUrl!)

  // The document's own example, verbatim: occupation 34 is in the catalogue a new directory starts with.
  const seedProfile = {
    gender: 0,
    occupation: 34,
    age: 18,
    name: 'name',
    identify_id: '100000190001010001',
    phone: '18888888888',
    address: 'address1'
  }
  const registered = await api('POST', '/api/users/', {
    body: { username: 'test1', password: 'password1', email: 'email1@test.com', profile: seedProfile }
  })
  t.equal(registered.status, 200, registered.text)
  const id = registered.json.id
  t.match(registered.json.profile, { ...seedProfile, name_pinyin: 'name', user: id, creator: id, modifier: null })
  t.ok(registered.headers.get('x-request-id'))

  const zhang = await api('POST', '/api/users/', {
    body: { username: 'zhang3', password: 'password1', profile: { ...seedProfile, name: '张三' } }
  })
  t.equal(zhang.status, 200, zhang.text)
  t.equal(zhang.json.profile.name_pinyin, 'zhangsan')

  const login = await api('POST', '/api/auth', { body: { username: 'test1', password: 'password1' } })
  t.equal(login.status, 200)
  const { access, refresh } = login.json

  const self = await api('GET', `/api/users/${id}/`, { token: access })
  t.equal(self.status, 200)
  t.equal(self.json.username, 'test1')

  // The document's PUT example, verbatim (the same password again is no change), then a rename.
  const putSeed = await api('PUT', `/api/users/${id}/`, {
    token: access,
    body: { password: 'password1', email: 'email1@test.com', profile: seedProfile }
  })
  t.equal(putSeed.status, 200, putSeed.text)
  t.equal(putSeed.json.profile.modifier, id)
  const put = await api('PUT', `/api/users/${id}/`, {
    token: access,
    body: {
      password: 'password1',
      email: 'email2@test.com',
      profile: {
        gender: 1,
        age: 19,
        name: '李四',
        identify_id: '100000190001010001',
        phone: '18888888888',
        address: 'address2'
      }
    }
  })
  t.equal(put.status, 200, put.text)
  t.equal(put.json.email, 'email2@test.com')
  t.equal(put.json.profile.name_pinyin, 'lisi')

  const refreshed = await api('POST', '/api/auth/refresh/', { body: { refresh } })
  t.equal(refreshed.status, 200)
  const access2 = refreshed.json.access

  const admin = await api('POST', '/api/auth/', { body: ADMIN })
  const search = await api('GET', '/api/users/?search=ls', { token: admin.json.access })
  t.equal(search.status, 200)
  t.same(
    search.json.map((u: { id: number }) => u.id),
    [id]
  )
  t.equal(search.headers.get('x-total-count'), '1')

  const logout = await api('GET', '/api/auth/logout/', { token: access2 })
  t.equal(logout.status, 200)
  t.same(logout.json, { detail: '成功登出！' })
  for (const token of [access, access2]) {
    const refused = await api('GET', `/api/users/${id}/`, { token })
    t.equal(refused.status, 401)
    t.equal(refused.json.code, 'token_not_valid')
  }
  t.equal((await api('POST', '/api/auth/refresh/', { body: { refresh } })).status, 401)

  const docs = await api('GET', '/docs/json')
  t.ok(docs.json.paths['/api/users/{pk}/'])
  t.equal((await api('GET', '/health')).status, 200, '/health')
  for (const path of ['/ready', '/metrics']) {
    t.equal((await api('GET', path)).status, 404, `${path} is not public`)
    t.equal((await fetch(system.internalUrls.gateway + path)).status, 200, `${path} on the gateway's internal port`)
  }
})
