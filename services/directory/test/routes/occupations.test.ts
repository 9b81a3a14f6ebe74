import t from 'tap'
import { eventually } from '@roster/service-kit/testing'
import { SEED_PROFILE, register } from '@roster/identity/testing'
import { build, eventsOn } from '../helper.js'

t.test('occupations: permissions, CRUD, validation and events', async (t) => {
  const { app, admin, user } = await build(t)
  const create = (payload: unknown, headers: Record<string, string> = admin.headers) =>
    app.inject({ method: 'POST', url: '/api/occupations/', headers, payload: payload as object })

  t.test('roles', async (t) => {
    t.equal((await app.inject({ method: 'GET', url: '/api/occupations/' })).statusCode, 401)
    t.equal((await create({ name: 'anon' }, {})).statusCode, 401)
    t.equal((await create({ name: 'by user' }, user.headers)).statusCode, 403)
    const made = await create({ name: 'doctor' })
    t.equal(made.statusCode, 200, made.body)
    const { id } = made.json()
    t.same(made.json(), { id, name: 'doctor' })
    t.same((await app.inject({ method: 'GET', url: `/api/occupations/${id}/`, headers: user.headers })).json(), {
      id,
      name: 'doctor'
    })
    t.equal((await app.inject({ method: 'GET', url: `/api/occupations/${id}/` })).statusCode, 401)
    for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
      const res = await app.inject({
        method,
        url: `/api/occupations/${id}/`,
        headers: user.headers,
        payload: { name: 'x' }
      })
      t.equal(res.statusCode, 403, method)
      t.same(res.json(), { detail: '您没有执行该操作的权限。' })
    }
  })

  t.test('validation and uniqueness', async (t) => {
    const cases: [unknown, unknown][] = [
      [{}, { name: ['该字段是必填项。'] }],
      [{ name: '' }, { name: ['该字段不能为空。'] }],
      [{ name: ' ' }, { name: ['该字段不能为空。'] }],
      [{ name: 'n'.repeat(256) }, { name: ['请确保这个字段不能超过 255 个字符。'] }],
      [{ name: 'Doctor' }, { name: ['该字段必须唯一。'] }]
    ]
    for (const [payload, errors] of cases) {
      const res = await create(payload)
      t.equal(res.statusCode, 400, JSON.stringify(payload))
      t.same(res.json(), errors)
    }
    t.equal((await create({ name: 'n'.repeat(255) })).statusCode, 200)
    const nurse = (await create({ name: 'nurse', id: 12345 })).json()
    t.not(nurse.id, 12345)
    const put = await app.inject({
      method: 'PUT',
      url: `/api/occupations/${nurse.id}/`,
      headers: admin.headers,
      payload: { name: 'DOCTOR' }
    })
    t.same(put.json(), { name: ['该字段必须唯一。'] })
    const noName = await app.inject({
      method: 'PUT',
      url: `/api/occupations/${nurse.id}/`,
      headers: admin.headers,
      payload: {}
    })
    t.same(noName.json(), { name: ['该字段是必填项。'] }, 'PUT needs the name')
    const patch = await app.inject({
      method: 'PATCH',
      url: `/api/occupations/${nurse.id}/`,
      headers: admin.headers,
      payload: {}
    })
    t.same(patch.json(), nurse, 'PATCH without fields changes nothing')
  })

  t.test('update, delete and 404s', async (t) => {
    const { id } = (await create({ name: 'surgeon' })).json()
    const url = `/api/occupations/${id}/`
    const put = await app.inject({ method: 'PUT', url, headers: admin.headers, payload: { name: 'chief surgeon' } })
    t.same(put.json(), { id, name: 'chief surgeon' })
    const patch = await app.inject({ method: 'PATCH', url, headers: admin.headers, payload: { name: 'Chief Surgeon' } })
    t.same(patch.json(), { id, name: 'Chief Surgeon' }, 'its own name in another case')
    const del = await app.inject({ method: 'DELETE', url, headers: admin.headers })
    t.same(del.json(), { detail: '删除成功。' })
    for (const path of [url, '/api/occupations/abc/', '/api/occupations/2147483648/', '/api/occupations/-1/']) {
      for (const method of ['GET', 'PUT', 'PATCH', 'DELETE'] as const) {
        const res = await app.inject({
          method,
          url: path,
          headers: admin.headers,
          payload: method === 'PUT' || method === 'PATCH' ? { name: 'nf' } : undefined
        })
        t.equal(res.statusCode, 404, `${method} ${path}`)
        t.same(res.json(), { detail: '未找到。' })
      }
    }
  })

  t.test('list', async (t) => {
    const all = await app.inject({ method: 'GET', url: '/api/occupations/', headers: user.headers })
    const ids = all.json().map((o: { id: number }) => o.id)
    t.same(
      ids,
      [...ids].sort((a: number, b: number) => a - b),
      'id ascending'
    )
    t.equal(all.headers['x-total-count'], String(ids.length))
    const search = await app.inject({ method: 'GET', url: '/api/occupations/?search=DOC', headers: user.headers })
    t.same(
      search.json().map((o: { name: string }) => o.name),
      ['doctor']
    )
    const page = await app.inject({ method: 'GET', url: '/api/occupations/?limit=1&offset=1', headers: user.headers })
    t.same(
      page.json().map((o: { id: number }) => o.id),
      [ids[1]]
    )
    t.match(page.headers.link, /rel="next"/)
    t.match(page.headers.link, /rel="prev"/)
    // Past the last page no row carries the total: it is counted on its own, with the search.
    const past = await app.inject({ method: 'GET', url: '/api/occupations/?offset=100000', headers: user.headers })
    t.same(past.json(), [])
    t.equal(past.headers['x-total-count'], String(ids.length))
    const pastSearch = await app.inject({
      method: 'GET',
      url: '/api/occupations/?search=DOC&offset=5',
      headers: user.headers
    })
    t.equal(pastSearch.headers['x-total-count'], '1')
    t.equal(
      (await app.inject({ method: 'GET', url: '/api/occupations/?offset=x', headers: user.headers })).statusCode,
      400
    )
  })
})

t.test('occupation events carry growing versions, and identity applies them', async (t) => {
  const { app, identity, admin } = await build(t)
  const { id } = (
    await app.inject({
      method: 'POST',
      url: '/api/occupations/',
      headers: admin.headers,
      payload: { name: 'pharmacist' }
    })
  ).json()
  await app.inject({
    method: 'PUT',
    url: `/api/occupations/${id}/`,
    headers: admin.headers,
    payload: { name: 'pharmacist 2' }
  })
  await app.inject({ method: 'PATCH', url: `/api/occupations/${id}/`, headers: admin.headers, payload: {} })

  const events = await eventsOn(app, 'directory.occupation.', 3)
  t.same(
    events.map((e) => [e.subject, e.data]),
    [
      ['directory.occupation.created', { occupation_id: id, version: 1, name: 'pharmacist' }],
      ['directory.occupation.updated', { occupation_id: id, version: 2, name: 'pharmacist 2' }],
      ['directory.occupation.updated', { occupation_id: id, version: 3, name: 'pharmacist 2' }]
    ]
  )

  // Concurrent writers are serialised by the row lock: every version is used once, in order.
  const { id: busy } = (
    await app.inject({ method: 'POST', url: '/api/occupations/', headers: admin.headers, payload: { name: 'busy' } })
  ).json()
  const patches = await Promise.all(
    Array.from({ length: 5 }, (_, i) =>
      app.inject({
        method: 'PATCH',
        url: `/api/occupations/${busy}/`,
        headers: admin.headers,
        payload: { name: `busy ${i}` }
      })
    )
  )
  t.same(
    patches.map((r) => r.statusCode),
    [200, 200, 200, 200, 200]
  )
  const busyEvents = (await eventsOn(app, 'directory.occupation.', 9)).filter(
    (e) => (e.data as { occupation_id: number }).occupation_id === busy
  )
  t.same(
    busyEvents.map((e) => (e.data as { version: number }).version),
    [1, 2, 3, 4, 5, 6]
  )
  const final = (await app.inject({ method: 'GET', url: `/api/occupations/${busy}/`, headers: admin.headers })).json()
  t.equal(final.name, (busyEvents[5].data as { name: string }).name, 'the last event is the state that stands')

  // identity's replica learns the occupation from the stream: a user can hold it.
  const holder = (await eventually(
    () => register(identity, { profile: { ...SEED_PROFILE, occupation: id } }).catch(() => null),
    {
      timeoutMs: 15000
    }
  ))!
  t.equal((holder.profile as { occupation: number }).occupation, id)

  await app.inject({ method: 'DELETE', url: `/api/occupations/${id}/`, headers: admin.headers })
  const all = await eventsOn(app, 'directory.occupation.', 10)
  t.same(all[9].data, { occupation_id: id, version: 4 })
  t.equal(all[9].subject, 'directory.occupation.deleted')

  // ... and clears it from its holders when it is deleted.
  const login = await identity.inject({
    method: 'POST',
    url: '/api/auth/',
    payload: { username: holder.username, password: 'password1' }
  })
  t.equal(login.statusCode, 200, login.body)
  const headers = { authorization: `Bearer ${login.json().access}` }
  let last = ''
  const cleared = await eventually(
    async () => {
      const me = await identity.inject({ method: 'GET', url: `/api/users/${holder.id}/`, headers })
      last = `${me.statusCode} ${me.body}`
      return me.statusCode === 200 && me.json().profile.occupation === null
    },
    { timeoutMs: 15000 }
  ).catch(() => false)
  t.ok(cleared, `the holder lost the deleted occupation (last answer: ${last})`)
})
