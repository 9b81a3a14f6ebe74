import { eventually } from '@roster/service-kit/testing'
import t from 'tap'
import { bearer, buildSystem, get, newUser, sql, type Account, type System } from '../helper.js'

const RFC3339_SHANGHAI = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00$/

t.test('black list', async (t) => {
  const sys: System = await buildSystem(t)
  const { audit, identity, admin } = sys
  const user = await newUser(sys)

  const send = (
    method: 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    token: string | undefined,
    payload?: unknown,
    headers = {}
  ) =>
    audit.inject({
      method,
      url,
      headers: { ...(token ? bearer(token) : {}), ...headers },
      ...(payload === undefined ? {} : { payload: payload as any })
    })
  const add = (patient: unknown, reason: unknown = 'no-show three times', token = admin.access) =>
    send('POST', '/api/black-list/', token, { patient, reason })
  const patient = (): Promise<Account> => newUser(sys, { login: false })

  t.test('listing a patient answers the full entry; read-only fields sent are ignored', async (t) => {
    const p = await patient()
    const res = await send('POST', '/api/black-list/', admin.access, {
      patient: p.id,
      reason: '  missed appointments  ',
      id: 424242,
      creator: 1234,
      is_delete: 1,
      join_time: '2001-01-01T00:00:00Z'
    })
    t.equal(res.statusCode, 200, res.body)
    const entry = res.json()
    t.match(entry, { patient: p.id, is_delete: 0, reason: 'missed appointments', creator: admin.id })
    t.not(entry.id, 424242)
    t.match(entry.join_time, RFC3339_SHANGHAI)
    t.ok(Math.abs(Date.parse(entry.join_time) - Date.now()) < 60_000)
    t.same(Object.keys(entry).sort(), ['creator', 'id', 'is_delete', 'join_time', 'patient', 'reason'])
    const one = await get(audit, `/api/black-list/${entry.id}/`, user.access)
    t.equal(one.statusCode, 200)
    t.same(one.json(), entry)
  })

  t.test('permissions', async (t) => {
    const p = await patient()
    const entry = (await add(p.id)).json()
    t.equal((await get(audit, '/api/black-list/')).statusCode, 401)
    t.equal((await get(audit, `/api/black-list/${entry.id}/`)).statusCode, 401)
    t.equal((await get(audit, '/api/black-list/', user.access)).statusCode, 200, 'any user may read the list')
    t.equal((await get(audit, `/api/black-list/${entry.id}/`, user.access)).statusCode, 200)
    for (const pk of [entry.id, 99999999]) {
      t.equal((await add(p.id, 'x', user.access)).statusCode, 403)
      t.equal((await send('PUT', `/api/black-list/${pk}/`, user.access, { reason: 'x' })).statusCode, 403, `PUT ${pk}`)
      t.equal(
        (await send('PATCH', `/api/black-list/${pk}/`, user.access, { reason: 'x' })).statusCode,
        403,
        `PATCH ${pk}`
      )
      t.equal((await send('DELETE', `/api/black-list/${pk}/`, user.access)).statusCode, 403, `DELETE ${pk}`)
    }
    t.equal((await send('DELETE', `/api/black-list/${entry.id}/`, undefined)).statusCode, 401)
    t.equal((await get(audit, `/api/black-list/${entry.id}/`, user.access)).json().is_delete, 0, 'nothing changed')
  })

  t.test('validation', async (t) => {
    const p = await patient()
    const cases: [unknown, Record<string, string[]>][] = [
      [{ patient: 7777777, reason: 'x' }, { patient: ['无效主键 “7777777” － 对象不存在。'] }],
      [{ patient: 0, reason: 'x' }, { patient: ['无效主键 “0” － 对象不存在。'] }],
      [{ patient: 2147483648, reason: 'x' }, { patient: ['无效主键 “2147483648” － 对象不存在。'] }],
      [{ patient: 1e20, reason: 'x' }, { patient: ['无效主键 “100000000000000000000” － 对象不存在。'] }],
      [{ patient: 'abc', reason: 'x' }, { patient: ['请填写合法的整数值。'] }],
      [{}, { patient: ['该字段是必填项。'], reason: ['该字段是必填项。'] }],
      [{ patient: p.id }, { reason: ['该字段是必填项。'] }],
      [{ patient: p.id, reason: '' }, { reason: ['该字段不能为空。'] }],
      [{ patient: p.id, reason: '   ' }, { reason: ['该字段不能为空。'] }],
      [{ patient: p.id, reason: 'x'.repeat(65) }, { reason: ['请确保这个字段不能超过 64 个字符。'] }],
      [{ patient: p.id, reason: 'a\u0000b' }, { reason: ['不允许包含空字符。'] }],
      [{ patient: p.id, reason: {} }, { reason: ['不是有效的字符串。'] }],
      [[p.id], { non_field_errors: ['无效数据。期待为字典类型，得到的是 list 。'] }],
      [
        { patient: 7777777, reason: '' },
        { reason: ['该字段不能为空。'], patient: ['无效主键 “7777777” － 对象不存在。'] }
      ]
    ]
    for (const [payload, body] of cases) {
      const res = await send('POST', '/api/black-list/', admin.access, payload)
      t.equal(res.statusCode, 400, JSON.stringify(payload))
      t.same(res.json(), body, JSON.stringify(payload))
    }
    const en = await send(
      'POST',
      '/api/black-list/',
      admin.access,
      { patient: 7777777, reason: 'x' },
      { 'accept-language': 'en' }
    )
    t.same(en.json(), { patient: ['Invalid pk "7777777" - object does not exist.'] })
    const notJson = await audit.inject({
      method: 'POST',
      url: '/api/black-list/',
      headers: { ...bearer(admin.access), 'content-type': 'application/json' },
      payload: '{"patient": '
    })
    t.equal(notJson.statusCode, 400)
    const longest = await add(p.id, '长'.repeat(64))
    t.equal(longest.statusCode, 200, '64 characters of Chinese fit')
    t.equal(longest.json().reason, '长'.repeat(64))
  })

  t.test('a patient is actively listed once', async (t) => {
    const p = await patient()
    t.equal((await add(p.id)).statusCode, 200)
    const again = await add(p.id, 'another reason')
    t.equal(again.statusCode, 400)
    t.same(again.json(), { patient: ['该病人已在黑名单中。'] })

    const q = await patient()
    const racing = await Promise.all(Array.from({ length: 6 }, () => add(q.id)))
    t.same(racing.map((r) => r.statusCode).sort(), [200, 400, 400, 400, 400, 400], 'parallel listings: one wins')
    for (const r of racing.filter((r) => r.statusCode === 400)) t.same(r.json(), { patient: ['该病人已在黑名单中。'] })
    const [{ n }] = await sql(audit, 'select count(*) as n from black_list where patient_id = ?', [q.id])
    t.equal(Number(n), 1)
  })

  t.test('patients: existing users only; identity is asked on a miss', async (t) => {
    const gone = await patient()
    const del = await identity.inject({
      method: 'DELETE',
      url: `/api/users/${gone.id}/`,
      headers: bearer(admin.access)
    })
    t.equal(del.statusCode, 200)
    await eventually(
      async () =>
        (await sql(audit, 'select 1 from known_user where id = ? and deleted_at is not null', [gone.id])).length === 1
    )
    t.same((await add(gone.id)).json(), { patient: [`无效主键 “${gone.id}” － 对象不存在。`] }, 'a deleted user')

    const fresh = await patient()
    await sql(audit, 'delete from known_user where id = ?', [fresh.id])
    const res = await add(fresh.id)
    t.equal(res.statusCode, 200, `a user audit has not heard of: ${res.body}`)
    t.equal((await sql(audit, 'select 1 from known_user where id = ?', [fresh.id])).length, 1, 'remembered')
  })

  t.test('changing the reason', async (t) => {
    const p = await patient()
    const entry = (await add(p.id, 'first')).json()
    const put = await send('PUT', `/api/black-list/${entry.id}/`, admin.access, {
      reason: 'second',
      patient: 1,
      is_delete: 1,
      creator: 99
    })
    t.equal(put.statusCode, 200, put.body)
    t.same(put.json(), { ...entry, reason: 'second' }, 'only reason changes')
    const noReason = await send('PUT', `/api/black-list/${entry.id}/`, admin.access, { patient: 3 })
    t.equal(noReason.statusCode, 400)
    t.same(noReason.json(), { reason: ['该字段是必填项。'] })
    const empty = await send('PATCH', `/api/black-list/${entry.id}/`, admin.access, {})
    t.equal(empty.statusCode, 200)
    t.same(empty.json(), { ...entry, reason: 'second' }, 'an empty PATCH changes nothing')
    const patch = await send('PATCH', `/api/black-list/${entry.id}/`, admin.access, { reason: 'third' })
    t.same(patch.json(), { ...entry, reason: 'third' })
    const tooLong = await send('PATCH', `/api/black-list/${entry.id}/`, admin.access, { reason: 'y'.repeat(65) })
    t.equal(tooLong.statusCode, 400)
    t.same(tooLong.json(), { reason: ['请确保这个字段不能超过 64 个字符。'] })
    t.equal((await get(audit, `/api/black-list/${entry.id}/`, user.access)).json().reason, 'third')
    t.equal((await send('PUT', '/api/black-list/99999999/', admin.access, { reason: 'x' })).statusCode, 404)
    t.equal((await send('PATCH', '/api/black-list/abc/', admin.access, { reason: 'x' })).statusCode, 404)
  })

  t.test('removal is soft, and a removed patient can be listed again', async (t) => {
    const p = await patient()
    const first = (await add(p.id, 'first time')).json()
    const del = await send('DELETE', `/api/black-list/${first.id}/`, admin.access)
    t.equal(del.statusCode, 200)
    t.same(del.json(), { detail: '删除成功。' })
    const en = await send('DELETE', `/api/black-list/${first.id}/`, admin.access, undefined, {
      'accept-language': 'en'
    })
    t.equal(en.statusCode, 200, 'removing a removed entry is no change')
    t.same(en.json(), { detail: 'Deleted successfully.' })
    const kept = await get(audit, `/api/black-list/${first.id}/`, user.access)
    t.equal(kept.statusCode, 200, 'the row stays')
    t.same(kept.json(), { ...first, is_delete: 1 })
    t.same((await get(audit, `/api/black-list/?patient=${p.id}`, user.access)).json(), [], 'no longer listed')

    const second = await add(p.id, 'second time')
    t.equal(second.statusCode, 200, second.body)
    t.not(second.json().id, first.id)
    t.same((await get(audit, `/api/black-list/?patient=${p.id}`, user.access)).json(), [second.json()])
    const history = await get(audit, `/api/black-list/?patient=${p.id}&include_deleted=true`, user.access)
    t.same(history.json(), [second.json(), { ...first, is_delete: 1 }], 'newest first, removed ones included')
    t.equal((await send('DELETE', '/api/black-list/99999999/', admin.access)).statusCode, 404)
    t.equal((await get(audit, '/api/black-list/99999999/', user.access)).statusCode, 404)
    t.equal((await get(audit, '/api/black-list/0/', user.access)).statusCode, 404)
  })

  t.test('the list: active entries newest first, filters and pages', async (t) => {
    await sql(audit, 'update black_list set is_delete = 1')
    const entries: any[] = []
    for (let i = 0; i < 5; i++) entries.push((await add((await patient()).id, `entry ${i}`)).json())
    await send('DELETE', `/api/black-list/${entries[1].id}/`, admin.access)
    const newestFirst = [...entries].reverse()

    const list = await get(audit, '/api/black-list/', user.access)
    t.equal(list.statusCode, 200)
    t.same(
      list.json().map((e: any) => e.id),
      newestFirst.filter((e) => e.id !== entries[1].id).map((e) => e.id)
    )
    t.equal(list.headers['x-total-count'], '4')

    const withDeleted = await get(audit, '/api/black-list/?include_deleted=true&limit=100', user.access)
    t.ok(withDeleted.json().length > 5, 'removed entries of earlier tests too')
    t.same(
      withDeleted
        .json()
        .slice(0, 5)
        .map((e: any) => [e.id, e.is_delete]),
      newestFirst.map((e) => [e.id, e.id === entries[1].id ? 1 : 0])
    )

    const page = await get(audit, '/api/black-list/?limit=2&offset=2', user.access)
    t.same(
      page.json().map((e: any) => e.id),
      [entries[2].id, entries[0].id]
    )
    t.equal(page.headers['x-total-count'], '4')
    t.match(page.headers.link, /offset=0>; rel="prev"/)
    t.notMatch(page.headers.link, /rel="next"/)
    const first = await get(audit, '/api/black-list/?limit=2', user.access)
    t.match(first.headers.link, /limit=2&offset=2>; rel="next"/)
    // Past the last page no row carries the total: it is counted on its own, per filter.
    const past = await get(audit, '/api/black-list/?limit=2&offset=1000', user.access)
    t.same(past.json(), [])
    t.equal(past.headers['x-total-count'], '4')
    const pastOne = await get(audit, `/api/black-list/?patient=${entries[3].patient}&offset=5`, user.access)
    t.same(pastOne.json(), [])
    t.equal(pastOne.headers['x-total-count'], '1')
    const pastAll = await get(audit, '/api/black-list/?include_deleted=true&offset=100000', user.access)
    t.equal(pastAll.headers['x-total-count'], withDeleted.headers['x-total-count'])

    t.same((await get(audit, `/api/black-list/?patient=${entries[3].patient}`, user.access)).json(), [entries[3]])
    t.same((await get(audit, '/api/black-list/?patient=99999999', user.access)).json(), [])
    const bad = await get(audit, '/api/black-list/?patient=x&include_deleted=maybe', user.access)
    t.equal(bad.statusCode, 400)
    t.same(bad.json(), { patient: ['请填写合法的整数值。'], include_deleted: ['必须是有效的布尔值。'] })
  })
})
