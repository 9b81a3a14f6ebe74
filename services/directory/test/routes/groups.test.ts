import t from 'tap'
import { eventually } from '@roster/service-kit/testing'
import { build, eventsOn } from '../helper.js'

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+08:00$/

t.test('groups: permissions, CRUD and profile rules', async (t) => {
  const { app, admin, user } = await build(t)
  const create = (payload: unknown, headers = admin.headers) =>
    app.inject({ method: 'POST', url: '/api/groups/', headers, payload: payload as object })

  t.test('anonymous callers are refused', async (t) => {
    const list = await app.inject({ method: 'GET', url: '/api/groups/' })
    t.equal(list.statusCode, 401)
    t.same(list.json(), { detail: '身份认证信息未提供。' })
    t.equal(list.headers['www-authenticate'], 'Bearer realm="api"')
    t.equal((await create({ name: 'anon' }, {} as any)).statusCode, 401)
    t.equal((await app.inject({ method: 'GET', url: '/api/groups/1/' })).statusCode, 401)
    t.equal((await app.inject({ method: 'DELETE', url: '/api/groups/1/' })).statusCode, 401)
  })

  t.test('a user may read but not write', async (t) => {
    const res = await create({ name: 'by user' }, user.headers)
    t.equal(res.statusCode, 403)
    t.same(res.json(), { detail: '您没有执行该操作的权限。' })
    const made = (await create({ name: 'readable' })).json()
    t.equal((await app.inject({ method: 'GET', url: '/api/groups/', headers: user.headers })).statusCode, 200)
    t.equal(
      (await app.inject({ method: 'GET', url: `/api/groups/${made.id}/`, headers: user.headers })).statusCode,
      200
    )
    for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
      const res = await app.inject({
        method,
        url: `/api/groups/${made.id}/`,
        headers: user.headers,
        payload: { name: 'x' }
      })
      t.equal(res.statusCode, 403, `${method} by a user`)
    }
  })

  t.test('an admin creates a group with a profile', async (t) => {
    const res = await create({
      name: 'group1',
      profile: { location: 'location1', contact_phone: '18888888881' },
      id: 999,
      creator: 5
    })
    t.equal(res.statusCode, 200, res.body)
    const group = res.json()
    t.not(group.id, 999, 'read-only id is ignored')
    t.equal(group.name, 'group1')
    t.match(group.profile, {
      location: 'location1',
      contact_phone: '18888888881',
      group: group.id,
      creator: admin.id,
      modifier: null
    })
    t.match(group.profile.create_time, TIME)
    t.match(group.profile.modify_time, TIME)
    const read = await app.inject({ method: 'GET', url: `/api/groups/${group.id}`, headers: admin.headers })
    t.same(read.json(), group, 'read back (no trailing slash works too)')

    const bare = (await create({ name: 'no profile' })).json()
    t.equal(bare.profile, null)
    t.equal((await create({ name: 'null profile', profile: null })).json().profile, null)
    const empty = (await create({ name: 'empty profile', profile: {} })).json()
    t.match(empty.profile, { location: '', contact_phone: '', creator: admin.id })
  })

  t.test('names are unique, case-insensitively', async (t) => {
    await create({ name: 'Unique Group' })
    for (const name of ['Unique Group', 'unique group', '  UNIQUE GROUP ']) {
      const res = await create({ name })
      t.equal(res.statusCode, 400, name)
      t.same(res.json(), { name: ['该字段必须唯一。'] })
    }
    const other = (await create({ name: 'Other Group' })).json()
    const taken = await app.inject({
      method: 'PATCH',
      url: `/api/groups/${other.id}/`,
      headers: admin.headers,
      payload: { name: 'UNIQUE group' }
    })
    t.equal(taken.statusCode, 400)
    t.same(taken.json(), { name: ['该字段必须唯一。'] })
    const en = await app.inject({
      method: 'PUT',
      url: `/api/groups/${other.id}/`,
      headers: { ...admin.headers, 'accept-language': 'en' },
      payload: { name: 'unique GROUP' }
    })
    t.same(en.json(), { name: ['This field must be unique.'] })
    const same = await app.inject({
      method: 'PUT',
      url: `/api/groups/${other.id}/`,
      headers: admin.headers,
      payload: { name: 'other group' }
    })
    t.equal(same.statusCode, 200, 'its own name, in another case, is fine')
    t.equal(same.json().name, 'other group')
  })

  t.test('concurrent creates of one name: one wins, the others are 400, never 500', async (t) => {
    const answers = await Promise.all(Array.from({ length: 6 }, () => create({ name: 'Raced' })))
    t.same(answers.map((r) => r.statusCode).sort(), [200, 400, 400, 400, 400, 400])
    for (const r of answers.filter((r) => r.statusCode === 400)) t.same(r.json(), { name: ['该字段必须唯一。'] })
  })

  t.test('validation errors are reported together, in the DRF shape', async (t) => {
    const cases: [unknown, unknown][] = [
      [{}, { name: ['该字段是必填项。'] }],
      [{ name: '' }, { name: ['该字段不能为空。'] }],
      [{ name: '   ' }, { name: ['该字段不能为空。'] }],
      // The kit's Ajv coerces null to "" before the type check, so this is `blank` rather than DRF's `null` message.
      [{ name: null }, { name: ['该字段不能为 null。'] }],
      [{ name: 'x'.repeat(151) }, { name: ['请确保这个字段不能超过 150 个字符。'] }],
      [
        { name: 'ok', profile: { contact_phone: 'call me' } },
        { profile: { contact_phone: ['请输入合法的联系电话。'] } }
      ],
      [
        { name: 'ok', profile: { contact_phone: '1'.repeat(21) } },
        { profile: { contact_phone: ['请确保这个字段不能超过 20 个字符。'] } }
      ],
      [
        { name: '', profile: { location: 'l'.repeat(256), contact_phone: '+86 (10) 1234' } },
        {
          name: ['该字段不能为空。'],
          profile: { location: ['请确保这个字段不能超过 255 个字符。'], contact_phone: ['请输入合法的联系电话。'] }
        }
      ],
      [{ name: 'ok', profile: 'here' }, { profile: ['无效数据。期待为字典类型，得到的是 str 。'] }]
    ]
    for (const [payload, errors] of cases) {
      const res = await create(payload)
      t.equal(res.statusCode, 400, JSON.stringify(payload))
      t.same(res.json(), errors, JSON.stringify(payload))
    }
    const ok = await create({
      name: 'x'.repeat(150),
      profile: { location: 'l'.repeat(255), contact_phone: '+86 010-1234 5678' }
    })
    t.equal(ok.statusCode, 200, 'the limits themselves are accepted')
    const en = await app.inject({
      method: 'POST',
      url: '/api/groups/',
      headers: { ...admin.headers, 'accept-language': 'en' },
      payload: {}
    })
    t.same(en.json(), { name: ['This field is required.'] })
    const notJson = await app.inject({
      method: 'POST',
      url: '/api/groups/',
      headers: { ...admin.headers, 'content-type': 'application/json' },
      payload: '{"name":'
    })
    t.equal(notJson.statusCode, 400)
  })

  t.test('PUT replaces, keeps the profile when none is sent; PATCH changes only what is sent', async (t) => {
    const group = (await create({ name: 'editable', profile: { location: 'here', contact_phone: '110' } })).json()
    const url = `/api/groups/${group.id}/`

    const renamed = await app.inject({ method: 'PUT', url, headers: admin.headers, payload: { name: 'edited' } })
    t.equal(renamed.statusCode, 200, renamed.body)
    t.match(renamed.json(), {
      id: group.id,
      name: 'edited',
      profile: { location: 'here', contact_phone: '110', creator: admin.id, modifier: admin.id }
    })
    t.equal(renamed.json().profile.create_time, group.profile.create_time)

    const kept = await app.inject({
      method: 'PUT',
      url,
      headers: admin.headers,
      payload: { name: 'edited', profile: null }
    })
    t.match(kept.json().profile, { location: 'here', contact_phone: '110' }, 'a null profile keeps it')

    const replaced = await app.inject({
      method: 'PUT',
      url,
      headers: admin.headers,
      payload: { name: 'edited', profile: { location: 'there' } }
    })
    t.match(replaced.json().profile, { location: 'there', contact_phone: '' }, 'a profile object replaces it')

    const missingName = await app.inject({
      method: 'PUT',
      url,
      headers: admin.headers,
      payload: { profile: { location: 'x' } }
    })
    t.equal(missingName.statusCode, 400)
    t.same(missingName.json(), { name: ['该字段是必填项。'] })

    const phone = await app.inject({
      method: 'PATCH',
      url,
      headers: admin.headers,
      payload: { profile: { contact_phone: '120' } }
    })
    t.equal(phone.statusCode, 200, phone.body)
    t.match(phone.json(), { name: 'edited', profile: { location: 'there', contact_phone: '120' } })

    const name = await app.inject({ method: 'PATCH', url, headers: admin.headers, payload: { name: 'patched' } })
    t.match(name.json(), { name: 'patched', profile: { location: 'there', contact_phone: '120' } })

    const nothing = await app.inject({ method: 'PATCH', url, headers: admin.headers, payload: {} })
    t.equal(nothing.statusCode, 200)
    t.match(nothing.json(), { name: 'patched', profile: { location: 'there', contact_phone: '120' } })

    const blank = await app.inject({ method: 'PATCH', url, headers: admin.headers, payload: { name: '' } })
    t.same(blank.json(), { name: ['该字段不能为空。'] })

    const bare = (await create({ name: 'bare' })).json()
    const viaPut = await app.inject({
      method: 'PUT',
      url: `/api/groups/${bare.id}/`,
      headers: admin.headers,
      payload: { name: 'bare', profile: { location: 'new' } }
    })
    t.match(
      viaPut.json().profile,
      { location: 'new', contact_phone: '', group: bare.id, creator: admin.id },
      'PUT creates a missing profile'
    )
    const bare2 = (await create({ name: 'bare2' })).json()
    const viaPatch = await app.inject({
      method: 'PATCH',
      url: `/api/groups/${bare2.id}/`,
      headers: admin.headers,
      payload: { profile: { contact_phone: '119' } }
    })
    t.match(
      viaPatch.json(),
      { name: 'bare2', profile: { location: '', contact_phone: '119', creator: admin.id } },
      'PATCH creates one too'
    )
    const stillBare = (await create({ name: 'still bare' })).json()
    const renameBare = await app.inject({
      method: 'PATCH',
      url: `/api/groups/${stillBare.id}/`,
      headers: admin.headers,
      payload: { name: 'renamed bare' }
    })
    t.equal(renameBare.json().profile, null, 'no profile is made up')
  })

  t.test('missing and malformed ids are 404; delete removes the group', async (t) => {
    for (const id of ['999999', 'abc', '0', '99999999999', '1.5']) {
      for (const method of ['GET', 'PUT', 'PATCH', 'DELETE'] as const) {
        const res = await app.inject({
          method,
          url: `/api/groups/${id}/`,
          headers: admin.headers,
          payload: method === 'PUT' || method === 'PATCH' ? { name: 'nf' } : undefined
        })
        t.equal(res.statusCode, 404, `${method} ${id}`)
        t.same(res.json(), { detail: '未找到。' })
      }
    }
    const group = (await create({ name: 'doomed', profile: { location: 'x' } })).json()
    const del = await app.inject({ method: 'DELETE', url: `/api/groups/${group.id}/`, headers: admin.headers })
    t.equal(del.statusCode, 200)
    t.same(del.json(), { detail: '删除成功。' })
    t.equal(
      (await app.inject({ method: 'GET', url: `/api/groups/${group.id}/`, headers: admin.headers })).statusCode,
      404
    )
    t.equal(
      (await app.inject({ method: 'DELETE', url: `/api/groups/${group.id}/`, headers: admin.headers })).statusCode,
      404
    )
    const again = await create({ name: 'doomed' })
    t.equal(again.statusCode, 200, 'the name is free again')
    const en = await app.inject({
      method: 'DELETE',
      url: `/api/groups/${again.json().id}/`,
      headers: { ...admin.headers, 'accept-language': 'en' }
    })
    t.same(en.json(), { detail: 'Deleted successfully.' })
  })

  t.test('other methods are 405', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/api/groups/1/', headers: admin.headers, payload: {} })
    t.equal(res.statusCode, 405)
    t.match(res.headers.allow, /GET/)
  })
})

t.test('group list: order, search and pagination', async (t) => {
  const { app, admin, user } = await build(t)
  const names = ['Alpha', 'beta', 'ALPHABET', 'gamma 100%', 'delta_x', 'Epsilon']
  const ids: number[] = []
  for (const name of names) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/groups/',
      headers: admin.headers,
      payload: { name, profile: name === 'beta' ? { location: 'b' } : undefined }
    })
    ids.push(res.json().id)
  }
  const list = await app.inject({ method: 'GET', url: '/api/groups/', headers: user.headers })
  t.equal(list.statusCode, 200)
  t.same(
    list.json().map((g: { id: number }) => g.id),
    ids,
    'id ascending'
  )
  t.equal(list.headers['x-total-count'], '6')
  t.notOk(list.headers.link)
  t.match(list.json()[1], { name: 'beta', profile: { location: 'b' } })
  t.equal(list.json()[0].profile, null)

  const search = async (q: string) =>
    (await app.inject({ method: 'GET', url: `/api/groups/?search=${encodeURIComponent(q)}`, headers: user.headers }))
      .json()
      .map((g: { name: string }) => g.name)
  t.same(await search('alpha'), ['Alpha', 'ALPHABET'], 'case-insensitive substring')
  t.same(await search('%'), ['gamma 100%'], '% is taken literally')
  t.same(await search('_'), ['delta_x'], '_ is taken literally')
  t.same(await search('nothing'), [])

  const page = await app.inject({ method: 'GET', url: '/api/groups?limit=2&offset=2', headers: user.headers })
  t.same(
    page.json().map((g: { id: number }) => g.id),
    ids.slice(2, 4)
  )
  t.equal(page.headers['x-total-count'], '6')
  t.match(page.headers.link, /limit=2&offset=4>; rel="next"/)
  t.match(page.headers.link, /limit=2&offset=0>; rel="prev"/)
  const searched = await app.inject({ method: 'GET', url: '/api/groups/?search=a&limit=1', headers: user.headers })
  t.equal(searched.headers['x-total-count'], '5')
  t.equal(searched.json().length, 1)
  // Past the last page no row carries the total: it is counted on its own, with the search.
  const past = await app.inject({ method: 'GET', url: '/api/groups/?offset=1000', headers: user.headers })
  t.same(past.json(), [])
  t.equal(past.headers['x-total-count'], '6')
  const pastSearch = await app.inject({ method: 'GET', url: '/api/groups/?search=a&offset=7', headers: user.headers })
  t.equal(pastSearch.headers['x-total-count'], '5')

  for (const q of ['limit=0', 'limit=1001', 'offset=-1', 'limit=abc']) {
    const bad = await app.inject({ method: 'GET', url: `/api/groups/?${q}`, headers: user.headers })
    t.equal(bad.statusCode, 400, q)
  }
  t.equal((await app.inject({ method: 'GET', url: '/api/groups/?unknown=1', headers: user.headers })).statusCode, 200)
})

t.test('every group write publishes its event with a growing version', async (t) => {
  const { app, admin } = await build(t)
  const group = (
    await app.inject({ method: 'POST', url: '/api/groups/', headers: admin.headers, payload: { name: 'evented' } })
  ).json()
  const url = `/api/groups/${group.id}/`
  await app.inject({
    method: 'PUT',
    url,
    headers: admin.headers,
    payload: { name: 'evented', profile: { location: 'loc', contact_phone: '123' } }
  })
  await app.inject({ method: 'PATCH', url, headers: admin.headers, payload: { name: 'evented 2' } })
  await app.inject({ method: 'DELETE', url, headers: admin.headers })
  const refused = await app.inject({
    method: 'POST',
    url: '/api/groups/',
    headers: admin.headers,
    payload: { name: '' }
  })
  t.equal(refused.statusCode, 400)

  const events = await eventsOn(app, 'directory.group.', 4)
  t.same(
    events.map((e) => [e.subject, e.data]),
    [
      [
        'directory.group.created',
        { group_id: group.id, version: 1, name: 'evented', location: null, contact_phone: null }
      ],
      [
        'directory.group.updated',
        { group_id: group.id, version: 2, name: 'evented', location: 'loc', contact_phone: '123' }
      ],
      [
        'directory.group.updated',
        { group_id: group.id, version: 3, name: 'evented 2', location: 'loc', contact_phone: '123' }
      ],
      ['directory.group.deleted', { group_id: group.id, version: 4 }]
    ]
  )
  t.equal(new Set(events.map((e) => e.id)).size, 4, 'each event has its own id')
  // The relay marks a row published once NATS has acknowledged it, which may be after a subscriber has the event.
  const pending = async () =>
    (
      await app.orm.em
        .fork()
        .getConnection()
        .execute<{ n: number }[]>('select count(*)::int as n from outbox_event where published_at is null')
    )[0].n
  t.ok(await eventually(async () => (await pending()) === 0), 'the outbox is drained')
})
