import t from 'tap'
import { build, ADMIN, login, bearer, register, SEED_PROFILE } from '../helper.js'

const post = (app: Awaited<ReturnType<typeof build>>, payload: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/api/users/', payload: payload as any, headers })

t.test('registration', async (t) => {
  const app = await build(t)

  t.test('the seed document example succeeds, with and without profile', async (t) => {
    const res = await post(app, {
      username: 'test1',
      password: 'password1',
      email: 'email1@test.com',
      profile: SEED_PROFILE
    })
    t.equal(res.statusCode, 200, res.body)
    const user = res.json()
    t.match(user, {
      username: 'test1',
      email: 'email1@test.com',
      is_staff: false,
      is_active: true,
      profile: {
        ...SEED_PROFILE,
        name_pinyin: 'name',
        user: user.id,
        occupation: null,
        creator: user.id,
        modifier: null
      }
    })
    t.notOk('password' in user)
    t.match(user.profile.create_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00$/)
    const bare = await post(app, { username: 'bare', password: 'password1' })
    t.equal(bare.statusCode, 200)
    t.equal(bare.json().profile, null)
    t.equal(bare.json().email, '')
  })

  t.test('pinyin of Chinese names', async (t) => {
    const res = await post(app, { username: 'cq', password: 'password1', profile: { ...SEED_PROFILE, name: '重庆' } })
    t.equal(res.json().profile.name_pinyin, 'chongqing')
  })

  t.test('duplicate username, case-insensitive', async (t) => {
    const res = await post(app, { username: 'TEST1', password: 'password1' })
    t.equal(res.statusCode, 400)
    t.same(res.json(), { username: ['已存在一位使用该名字的用户。'] })
    const en = await post(app, { username: 'test1', password: 'password1' }, { 'accept-language': 'en' })
    t.same(en.json(), { username: ['A user with that username already exists.'] })
  })

  t.test('missing and blank fields, all reported at once', async (t) => {
    const missing = await post(app, {})
    t.equal(missing.statusCode, 400)
    t.same(missing.json(), { username: ['该字段是必填项。'], password: ['该字段是必填项。'] })
    const blank = await post(app, { username: '', password: '' })
    t.same(blank.json(), { username: ['该字段不能为空。'], password: ['该字段不能为空。'] })
    const en = await post(app, { username: '' }, { 'accept-language': 'en-US,en;q=0.9' })
    t.same(en.json(), { username: ['This field may not be blank.'], password: ['This field is required.'] })
    const nested = await post(app, { username: 'n1', password: 'password1', profile: {} })
    t.same(nested.json(), {
      profile: {
        name: ['该字段是必填项。'],
        gender: ['该字段是必填项。'],
        age: ['该字段是必填项。'],
        identify_id: ['该字段是必填项。']
      }
    })
  })

  t.test('too long, wrong type, bad email / phone / resident id', async (t) => {
    const res = await post(app, {
      username: 'u'.repeat(151),
      password: 'password1',
      email: 'not-an-email',
      profile: {
        ...SEED_PROFILE,
        age: 'old',
        gender: 3,
        phone: '12345',
        identify_id: '10000019000101000Y',
        address: 'a'.repeat(257)
      }
    })
    t.equal(res.statusCode, 400)
    t.same(res.json(), {
      username: ['请确保这个字段不能超过 150 个字符。'],
      email: ['请输入合法的邮件地址。'],
      profile: {
        age: ['请填写合法的整数值。'],
        gender: ['“3” 不是合法选项。'],
        phone: ['请输入合法的手机号码。'],
        identify_id: ['请输入有效的身份证号码：17 位数字加一位数字或 X。'],
        address: ['请确保这个字段不能超过 256 个字符。']
      }
    })
    const date = await post(app, {
      username: 'd1',
      password: 'password1',
      profile: { ...SEED_PROFILE, identify_id: '100000190002300001' }
    })
    t.same(date.json(), { profile: { identify_id: ['身份证号码中的出生日期无效。'] } })
    const badName = await post(app, { username: 'has space', password: 'password1' })
    t.match(badName.json(), { username: [/合法的用户名/] })
    const types = await post(app, { username: { a: 1 }, password: { a: 1 }, profile: 'me' })
    t.same(Object.keys(types.json()).sort(), ['password', 'profile', 'username'])
  })

  t.test('password rules', async (t) => {
    const short = await post(app, { username: 'p1', password: 'short1' })
    t.same(short.json(), { password: ['密码长度太短。密码必须包含至少 8 个字符。'] })
    const numeric = await post(app, { username: 'p2', password: '1234567890' })
    t.same(numeric.json(), { password: ['这个密码全部是数字。'] })
    const long = await post(app, { username: 'p3', password: '密'.repeat(25) })
    t.same(long.json(), { password: ['密码过长，不能超过 72 字节。'] })
  })

  t.test('unknown occupation', async (t) => {
    const res = await post(app, {
      username: 'o1',
      password: 'password1',
      profile: { ...SEED_PROFILE, occupation: 99999 }
    })
    t.equal(res.statusCode, 400)
    t.same(res.json(), { profile: { occupation: ['无效主键 “99999” － 对象不存在。'] } })
  })

  t.test('bodies that are not a JSON object', async (t) => {
    const notJson = await app.inject({
      method: 'POST',
      url: '/api/users/',
      payload: '{"username": ',
      headers: { 'content-type': 'application/json' }
    })
    t.equal(notJson.statusCode, 400)
    t.ok(notJson.json().detail)
    const array = await post(app, [1, 2])
    t.equal(array.statusCode, 400)
    t.same(array.json(), { non_field_errors: ['无效数据。期待为字典类型，得到的是 list 。'] })
    const big = await app.inject({
      method: 'POST',
      url: '/api/users/',
      payload: JSON.stringify({ username: 'big', password: 'x'.repeat(1024 * 1024) }),
      headers: { 'content-type': 'application/json' }
    })
    t.equal(big.statusCode, 413)
    t.ok(big.json().detail)
    const text = await app.inject({
      method: 'POST',
      url: '/api/users/',
      payload: 'hi',
      headers: { 'content-type': 'text/plain' }
    })
    t.equal(text.statusCode, 415)
    t.match(text.json(), { detail: /text\/plain/ })
  })

  t.test('read-only fields are ignored', async (t) => {
    const res = await post(app, {
      username: 'ro',
      password: 'password1',
      id: 999,
      is_staff: true,
      profile: { ...SEED_PROFILE, name_pinyin: 'x', creator: 5 }
    })
    t.equal(res.statusCode, 200)
    t.not(res.json().id, 999)
    t.equal(res.json().is_staff, false)
    t.equal(res.json().profile.name_pinyin, 'name')
    t.equal(res.json().profile.creator, res.json().id)
  })
})

t.test('reading, listing and searching users', async (t) => {
  const app = await build(t)
  const admin = await login(app, ADMIN.username, ADMIN.password)
  const zhang = await register(app, { profile: { ...SEED_PROFILE, name: '张三', phone: '13912345678' } })
  const li = await register(app, { profile: { ...SEED_PROFILE, name: '李四', gender: 1 } })
  const other = await register(app)
  const me = await login(app, zhang.username, 'password1')

  t.test('permissions', async (t) => {
    t.equal((await app.inject({ method: 'GET', url: '/api/users/' })).statusCode, 401)
    const anon = await app.inject({ method: 'GET', url: `/api/users/${zhang.id}/` })
    t.equal(anon.statusCode, 401)
    t.same(anon.json(), { detail: '身份认证信息未提供。' })
    t.equal(anon.headers['www-authenticate'], 'Bearer realm="api"')
    const list = await app.inject({ method: 'GET', url: '/api/users/', headers: bearer(me.access) })
    t.equal(list.statusCode, 403)
    t.same(list.json(), { detail: '您没有执行该操作的权限。' })
    t.equal(
      (await app.inject({ method: 'GET', url: `/api/users/${zhang.id}`, headers: bearer(me.access) })).statusCode,
      200
    )
    t.equal(
      (await app.inject({ method: 'GET', url: `/api/users/${other.id}/`, headers: bearer(me.access) })).statusCode,
      403
    )
    t.equal(
      (await app.inject({ method: 'GET', url: '/api/users/99999/', headers: bearer(me.access) })).statusCode,
      403,
      'no probing'
    )
    const missing = await app.inject({ method: 'GET', url: '/api/users/99999/', headers: bearer(admin.access) })
    t.equal(missing.statusCode, 404)
    t.same(missing.json(), { detail: '未找到。' })
    for (const bad of ['abc', '0', '99999999999', '-1', '1.5']) {
      t.equal(
        (await app.inject({ method: 'GET', url: `/api/users/${bad}/`, headers: bearer(admin.access) })).statusCode,
        404,
        bad
      )
    }
    const en = await app.inject({
      method: 'GET',
      url: '/api/users/99999/',
      headers: { ...bearer(admin.access), 'accept-language': 'en' }
    })
    t.same(en.json(), { detail: 'Not found.' })
    const method = await app.inject({ method: 'POST', url: `/api/users/${zhang.id}/`, headers: bearer(admin.access) })
    t.equal(method.statusCode, 405)
    t.same(method.json(), { detail: '方法 “POST” 不被允许。' })
  })

  t.test('search by pinyin, initials, characters, phone', async (t) => {
    for (const q of ['zs', 'zhangsan', '张', 'ZHANG', '1391234']) {
      const res = await app.inject({
        method: 'GET',
        url: `/api/users/?search=${encodeURIComponent(q)}`,
        headers: bearer(admin.access)
      })
      t.equal(res.statusCode, 200)
      t.same(
        res.json().map((u: { id: number }) => u.id),
        [zhang.id],
        q
      )
    }
    const none = await app.inject({ method: 'GET', url: '/api/users/?search=%25', headers: bearer(admin.access) })
    t.same(none.json(), [], 'LIKE wildcards are literal')
  })

  t.test('filters and pagination', async (t) => {
    const male = await app.inject({ method: 'GET', url: '/api/users/?gender=1', headers: bearer(admin.access) })
    t.same(
      male.json().map((u: { id: number }) => u.id),
      [li.id]
    )
    const page = await app.inject({ method: 'GET', url: '/api/users/?limit=2&offset=1', headers: bearer(admin.access) })
    t.equal(page.statusCode, 200)
    t.equal(page.headers['x-total-count'], '4')
    t.equal(page.json().length, 2)
    t.match(page.headers.link, /<[^>]*limit=2&offset=3>; rel="next"/)
    t.match(page.headers.link, /<[^>]*limit=2&offset=0>; rel="prev"/)
    const ids = page.json().map((u: { id: number }) => u.id)
    t.ok(ids[0] < ids[1], 'id ascending')
    const bad = await app.inject({
      method: 'GET',
      url: '/api/users/?limit=0&gender=x&is_active=maybe',
      headers: bearer(admin.access)
    })
    t.equal(bad.statusCode, 400)
    t.same(Object.keys(bad.json()).sort(), ['gender', 'is_active', 'limit'])
    const ignored = await app.inject({ method: 'GET', url: '/api/users/?unknown=1', headers: bearer(admin.access) })
    t.equal(ignored.statusCode, 200)
    const inactive = await app.inject({
      method: 'GET',
      url: '/api/users/?is_active=false',
      headers: bearer(admin.access)
    })
    t.same(inactive.json(), [])
  })
})

t.test('updating users', async (t) => {
  const app = await build(t)
  const admin = await login(app, ADMIN.username, ADMIN.password)
  const user = await register(app, { email: 'a@example.com', profile: { ...SEED_PROFILE, name: '张三' } })
  const other = await register(app, { email: 'b@example.com' })
  const session = await login(app, user.username, 'password1')
  const url = `/api/users/${user.id}/`

  t.test('PUT as in the document: same password needs nothing more', async (t) => {
    const res = await app.inject({
      method: 'PUT',
      url,
      headers: bearer(session.access),
      payload: { password: 'password1', email: 'new@example.com', profile: { ...SEED_PROFILE, name: '李四' } }
    })
    t.equal(res.statusCode, 200, res.body)
    t.equal(res.json().email, 'new@example.com')
    t.equal(res.json().profile.name_pinyin, 'lisi')
    t.equal(res.json().profile.modifier, user.id)
    t.equal(res.json().username, user.username)
  })

  t.test('PUT without profile keeps it; PATCH changes only what is sent', async (t) => {
    const put = await app.inject({
      method: 'PUT',
      url,
      headers: bearer(session.access),
      payload: { email: 'c@example.com' }
    })
    t.equal(put.json().profile.name, '李四')
    const patch = await app.inject({
      method: 'PATCH',
      url,
      headers: bearer(session.access),
      payload: { profile: { age: 30 } }
    })
    t.equal(patch.statusCode, 200)
    t.equal(patch.json().profile.age, 30)
    t.equal(patch.json().profile.name, '李四')
    t.equal(patch.json().email, 'c@example.com')
    const username = await app.inject({
      method: 'PATCH',
      url,
      headers: bearer(session.access),
      payload: { username: 'renamed' }
    })
    t.equal(username.json().username, user.username, 'username cannot change')
  })

  t.test('PATCH a profile into a user without one needs the required fields', async (t) => {
    const res = await app.inject({
      method: 'PATCH',
      url: `/api/users/${other.id}/`,
      headers: bearer(admin.access),
      payload: { profile: { age: 3 } }
    })
    t.equal(res.statusCode, 400)
    t.same(res.json(), {
      profile: { name: ['该字段是必填项。'], gender: ['该字段是必填项。'], identify_id: ['该字段是必填项。'] }
    })
  })

  t.test('email must stay unique', async (t) => {
    const res = await app.inject({
      method: 'PATCH',
      url,
      headers: bearer(session.access),
      payload: { email: 'B@example.com' }
    })
    t.equal(res.statusCode, 400)
    t.same(Object.keys(res.json()), ['email'])
  })

  t.test('only an admin changes is_staff and is_active', async (t) => {
    const self = await app.inject({
      method: 'PATCH',
      url,
      headers: bearer(session.access),
      payload: { is_staff: true }
    })
    t.equal(self.json().is_staff, false)
    const other403 = await app.inject({
      method: 'PATCH',
      url: `/api/users/${other.id}/`,
      headers: bearer(session.access),
      payload: {}
    })
    t.equal(other403.statusCode, 403)
  })

  t.test('user facts carry a version that rises with every change, in commit order', async (t) => {
    const target = await register(app, {})
    const changes = [true, false, true, false, true, false].map((is_active) =>
      app.inject({
        method: 'PATCH',
        url: `/api/users/${target.id}/`,
        headers: bearer(admin.access),
        payload: { is_active }
      })
    )
    t.same(
      (await Promise.all(changes)).map((r) => r.statusCode),
      [200, 200, 200, 200, 200, 200]
    )
    const facts = await app.orm.em
      .fork()
      .getConnection()
      .execute<{ subject: string; payload: { version: number; is_active: boolean } }[]>(
        `select subject, payload->'data' as payload from outbox_event
         where subject like '%identity.user.%' and (payload->'data'->>'user_id')::int = ? order by id`,
        [target.id]
      )
    const versions = facts.map((f) => f.payload.version)
    t.equal(facts[0].subject.endsWith('identity.user.created'), true)
    t.same(
      versions,
      [...versions].sort((a, b) => a - b),
      'versions rise in the order the facts were written'
    )
    t.equal(new Set(versions).size, 7, 'no two facts share a version')
    const [row] = await app.orm.em
      .fork()
      .getConnection()
      .execute('select is_active, version from app_user where id = ?', [target.id])
    t.same(facts.at(-1)!.payload.is_active, row.is_active, 'the newest fact is the stored state')
    t.equal(facts.at(-1)!.payload.version, row.version)
  })

  t.test('changing your own password needs the old one and ends other sessions', async (t) => {
    const second = await login(app, user.username, 'password1')
    const missing = await app.inject({
      method: 'PATCH',
      url,
      headers: bearer(session.access),
      payload: { password: 'password2' }
    })
    t.equal(missing.statusCode, 400)
    t.same(missing.json(), { old_password: ['该字段是必填项。'] })
    const wrong = await app.inject({
      method: 'PATCH',
      url,
      headers: bearer(session.access),
      payload: { password: 'password2', old_password: 'nope-nope' }
    })
    t.same(wrong.json(), { old_password: ['原密码不正确。'] })
    const ok = await app.inject({
      method: 'PATCH',
      url,
      headers: bearer(session.access),
      payload: { password: 'password2', old_password: 'password1' }
    })
    t.equal(ok.statusCode, 200)
    t.equal(
      (await app.inject({ method: 'GET', url, headers: bearer(session.access) })).statusCode,
      200,
      'this session goes on'
    )
    t.equal(
      (await app.inject({ method: 'GET', url, headers: bearer(second.access) })).statusCode,
      401,
      'the other one ended'
    )
    const refresh = await app.inject({
      method: 'POST',
      url: '/api/auth/refresh/',
      payload: { refresh: second.refresh }
    })
    t.equal(refresh.statusCode, 401)
    await login(app, user.username, 'password2')
  })

  t.test('an admin resets a password without old_password; deactivation ends all sessions', async (t) => {
    const reset = await app.inject({
      method: 'PATCH',
      url,
      headers: bearer(admin.access),
      payload: { password: 'password3' }
    })
    t.equal(reset.statusCode, 200)
    const fresh = await login(app, user.username, 'password3')
    const off = await app.inject({ method: 'PATCH', url, headers: bearer(admin.access), payload: { is_active: false } })
    t.equal(off.json().is_active, false)
    t.equal((await app.inject({ method: 'GET', url, headers: bearer(fresh.access) })).statusCode, 401)
    const denied = await app.inject({
      method: 'POST',
      url: '/api/auth/',
      payload: { username: user.username, password: 'password3' }
    })
    t.equal(denied.statusCode, 401)
  })
})

t.test('deleting users', async (t) => {
  const app = await build(t)
  const admin = await login(app, ADMIN.username, ADMIN.password)
  const user = await register(app, { profile: SEED_PROFILE })
  const session = await login(app, user.username, 'password1')
  const url = `/api/users/${user.id}/`
  t.equal((await app.inject({ method: 'DELETE', url })).statusCode, 401)
  t.equal((await app.inject({ method: 'DELETE', url, headers: bearer(session.access) })).statusCode, 403)
  const adminId = JSON.parse(Buffer.from(admin.access.split('.')[1], 'base64url').toString()).user_id
  t.equal(
    (await app.inject({ method: 'DELETE', url: `/api/users/${adminId}/`, headers: bearer(admin.access) })).statusCode,
    403
  )
  const res = await app.inject({ method: 'DELETE', url, headers: bearer(admin.access) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { detail: '删除成功。' })
  t.equal((await app.inject({ method: 'GET', url, headers: bearer(admin.access) })).statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url, headers: bearer(admin.access) })).statusCode, 404)
  t.equal(
    (await app.inject({ method: 'GET', url: '/api/auth/logout/', headers: bearer(session.access) })).statusCode,
    401
  )
})

t.test('NUL characters are refused field by field, never a 500', async (t) => {
  const app = await build(t)
  const res = await app.inject({
    method: 'POST',
    url: '/api/users/',
    payload: { username: 'nul', password: 'password1', profile: { ...SEED_PROFILE, address: 'a\u0000b' } }
  })
  t.equal(res.statusCode, 400)
  t.same(res.json(), { profile: { address: ['不允许包含空字符。'] } })
})
