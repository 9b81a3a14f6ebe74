import t from 'tap'
import type { EntityManager } from '@mikro-orm/postgresql'
import { build, login, ADMIN } from './helper.js'
import { identifierKey, mixesScripts, normalizeUsername, spoofsLatin } from '../src/domain/identifiers.js'

const TAKEN = { username: ['已存在一位使用该名字的用户。'] }
const MIXED = { username: ['用户名不能混用容易混淆的文字（例如拉丁字母中夹杂西里尔字母）。'] }
const INVALID = '请输入合法的用户名。只能包含字母、数字和 @/./+/-/_ 字符。'

t.test('the key: NFKC and full case folding', async (t) => {
  for (const [a, b] of [
    ['ａｄｍｉｎ', 'admin'],
    ['ADMIN', 'admin'],
    ['Ärzte', 'ärzte'],
    ['STRASSE', 'straße'],
    ['ΣΊΣΥΦΟΣ', 'σίσυφος'],
    ['ﬁle', 'FILE'],
    ['Ａｄｍｉｎ', 'aDMIN']
  ]) {
    t.equal(identifierKey(a), identifierKey(b), `${a} ~ ${b}`)
  }
  t.not(
    identifierKey('admin'),
    identifierKey('аdmin'),
    'the Cyrillic а is another letter (refused by the script rule instead)'
  )
  t.equal(
    Object.hasOwn(normalizeUsername('ｔａｒｏ9'), 'username') && (normalizeUsername('ｔａｒｏ9') as any).username,
    'taro9'
  )
  t.same(normalizeUsername('a½'), { error: 'username_invalid' }, 'the grammar holds after NFKC too')
  t.same(normalizeUsername('ﷺ'.repeat(10)), { error: 'username_invalid' })
})

t.test('the script rule: confusable mixes refused, CJK with Latin allowed', async (t) => {
  for (const bad of ['аdmin', 'pаypal', 'admin١', 'ѕcott', 'αdmin', 'adminΑ', 'ваsя'])
    t.ok(mixesScripts(bad), `${bad} is refused`)
  for (const good of [
    'admin',
    '张三zs01',
    '张三',
    '山田taro',
    'やまだ太郎',
    '김minsu',
    'иван',
    'αβγ',
    'user_1.2@x+y-z',
    'Ärzte',
    'ｔａｒｏ'
  ]) {
    t.notOk(mixesScripts(good.normalize('NFKC')), `${good} is fine`)
  }
})

t.test('whole-script confusables of Latin names are found by their skeleton', async (t) => {
  for (const spoof of ['раура', 'ѕсоре', 'ΑΒΕ', 'ᎪᏴᎬ']) t.ok(spoofsLatin(spoof), `${spoof} looks Latin`)
  for (const fine of ['paypal', 'иван', 'саша', 'рома', '张三', 'αβγ', 'やまだ', '12345'])
    t.notOk(spoofsLatin(fine), `${fine} is fine`)
})

t.test('registration: usernames unique after NFKC and case folding, confusable mixes refused', async (t) => {
  const app = await build(t)
  const register = (username: string, extra: Record<string, unknown> = {}) =>
    app.inject({ method: 'POST', url: '/api/users/', payload: { username, password: 'password1', ...extra } })

  for (const name of ['ａｄｍｉｎ', 'ADMIN', 'Admin', ' admin ', 'Ａdmin']) {
    const res = await register(name)
    t.equal(res.statusCode, 400, name)
    t.same(res.json(), TAKEN, name)
  }
  const arzte = await register('Ärzte')
  t.equal(arzte.statusCode, 200)
  // Decomposed (NFD, as some keyboards send it) is the same name as composed.
  for (const name of ['ärzte', 'ÄRZTE', 'A\u0308rzte'.normalize('NFC'), 'A\u0308rzte', 'a\u0308rzte'])
    t.same((await register(name)).json(), TAKEN, JSON.stringify(name))
  const jose = await register('Jose\u0301')
  t.equal(jose.statusCode, 200, 'a decomposed é is taken')
  t.equal(jose.json().username, 'José', 'and stored composed (NFKC)')
  for (const name of ['x\u0338', '\u0301', 'admin\u0301\u0301', 'a\u20dd'])
    t.same(
      (await register(name)).json(),
      { username: [INVALID] },
      `${JSON.stringify(name)}: a mark that composes with nothing`
    )
  t.equal((await register('straße')).statusCode, 200)
  t.same((await register('STRASSE')).json(), TAKEN)

  for (const name of ['аdmin', 'pаypal', 'admin١']) {
    const res = await register(name)
    t.equal(res.statusCode, 400, name)
    t.same(res.json(), MIXED, name)
  }
  for (const name of ['раура', 'ѕсоре', 'ΑΒΕ']) {
    const res = await register(name)
    t.equal(res.statusCode, 400, name)
    t.same(
      res.json(),
      { username: ['用户名与拉丁字母写成的名字容易混淆（例如全部用西里尔字母写成的 paypal）。'] },
      name
    )
  }
  for (const name of ['张三zs01', '山田taro', 'иван', 'саша', 'αβγ'])
    t.equal((await register(name)).statusCode, 200, name)

  const wide = await register('ｔａｒｏ9')
  t.equal(wide.statusCode, 200)
  t.equal(wide.json().username, 'taro9', 'stored in NFKC form, as Django stores it')
  t.same((await register('TARO9')).json(), TAKEN)

  // Emails are compared the same way (the grammar is ASCII, so this is case folding).
  t.equal((await register('mailer1', { email: 'Doc@Example.com' })).statusCode, 200)
  t.same((await register('mailer2', { email: 'doc@example.COM' })).json(), { email: ['已存在一位使用该邮箱的用户。'] })

  // Parallel registrations of one name in different spellings: exactly one wins, the rest are 400.
  const spellings = ['nurse', 'NURSE', 'Nurse', 'ｎｕｒｓｅ', 'ＮＵＲＳＥ', 'nUrse', 'nuRse', 'nurSe']
  const answers = await Promise.all(spellings.map((name) => register(name)))
  t.same(answers.map((r) => r.statusCode).sort(), [200, ...Array(spellings.length - 1).fill(400)])
  for (const res of answers.filter((r) => r.statusCode === 400)) t.same(res.json(), TAKEN)
})

t.test('login compares usernames as uniqueness does; a lone surrogate is a 400 before any password work', async (t) => {
  const app = await build(t)
  const [{ id: adminId }] = await (app.orm.em.fork() as EntityManager)
    .getConnection()
    .execute<{ id: number }[]>('select id from app_user where username = ?', [ADMIN.username])
  for (const name of ['admin', 'ADMIN', 'ａｄｍｉｎ', ' Admin ']) {
    const tokens = await login(app, name, ADMIN.password)
    const claims = JSON.parse(Buffer.from(tokens.access.split('.')[1], 'base64url').toString())
    t.equal(claims.user_id, adminId, `${name} is the admin`)
  }

  const before = await (app.orm.em.fork() as EntityManager)
    .getConnection()
    .execute('select count(*)::int as n from login_throttle')
  for (const text of [
    '{"username":"victim\\ud800","password":"password1"}',
    '{"username":"admin","password":"pass\\udfffword"}',
    '{"username":"a\\u0000","password":"password1"}'
  ]) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/',
      headers: { 'content-type': 'application/json' },
      payload: text
    })
    t.equal(res.statusCode, 400, text)
    t.ok(res.json().username || res.json().password, `a field error: ${res.body}`)
  }
  const after = await (app.orm.em.fork() as EntityManager)
    .getConnection()
    .execute('select count(*)::int as n from login_throttle')
  t.same(after, before, 'refused before the login ran: nothing counted, nothing hashed')
})

t.test('the migration keys existing users and keeps those the old rule let collide', async (t) => {
  const app = await build(t)
  const conn = (app.orm.em.fork() as EntityManager).getConnection()
  // Back to the schema before the migration, with rows the old rule (lower(username)) allowed together.
  await conn.execute('alter table app_user drop column username_key')
  await conn.execute('create unique index app_user_username_uq on app_user (lower(username))')
  const hash = await app.identity.passwords.hash('legacy-pass-1')
  const ids: Record<string, number> = {}
  for (const name of ['ａｄｍｉｎ', 'STRAßE', 'strasse']) {
    const [row] = await conn.execute<{ id: number }[]>(
      'insert into app_user (username, password) values (?, ?) returning id',
      [name, hash]
    )
    ids[name] = row.id
  }
  const deleted = await conn.execute(
    "delete from mikro_orm_migrations where name like 'Migration20261130000100%' returning name"
  )
  t.equal(deleted.length, 1)
  await app.orm.getMigrator().up()

  const rows = await conn.execute<{ username: string; username_key: string }[]>(
    'select username, username_key from app_user order by id'
  )
  t.same(
    rows.map((r) => [r.username, r.username_key]),
    [
      ['admin', 'admin'],
      ['ａｄｍｉｎ', `admin#${ids['ａｄｍｉｎ']}`],
      ['STRAßE', 'strasse'],
      ['strasse', `strasse#${ids.strasse}`]
    ]
  )
  const again = await app.inject({
    method: 'POST',
    url: '/api/users/',
    payload: { username: 'Strasse', password: 'password1' }
  })
  t.same(again.json(), TAKEN, 'the unique key holds after the backfill')
  t.ok(await login(app, 'ａｄｍｉｎ', ADMIN.password), 'the first account keeps the name')
  t.ok(
    await login(app, `ａｄｍｉｎ#${ids['ａｄｍｉｎ']}`, 'legacy-pass-1'),
    'the later one logs in with its id appended'
  )
  t.ok(await login(app, 'STRAßE', 'legacy-pass-1'))
})

t.test('hostile values through the identity service are 400s in the DRF shape', async (t) => {
  const app = await build(t)
  const admin = await login(app, ADMIN.username, ADMIN.password)
  const auth = { authorization: `Bearer ${admin.access}` }
  for (const url of [
    '/api/users/?search=a%00b',
    '/api/users/?search=%00',
    '/api/users/?occupation=1e309',
    '/api/users/?group=-1e400',
    '/api/users/?occupation=9007199254740993'
  ]) {
    const res = await app.inject({ url, headers: auth })
    t.equal(res.statusCode, 400, url)
    t.equal(Object.keys(res.json()).length, 1, `${url}: ${res.body}`)
  }
  const profile = { name: '张三', gender: 1, age: 30, identify_id: '110101199003074477' }
  for (const [occupation, message] of [
    ['1e309', '请填写合法的数字。'],
    ['-1e309', '请填写合法的数字。'],
    ['1e400', '请填写合法的数字。'],
    ['9007199254740993', '请确保该值小于或者等于 2147483647。'],
    ['2147483648', '请确保该值小于或者等于 2147483647。']
  ]) {
    const text = `{"username":"num${occupation.replace(/\W/g, '')}","password":"password1","profile":${JSON.stringify(profile).slice(0, -1)},"occupation":${occupation}}}`
    const res = await app.inject({
      method: 'POST',
      url: '/api/users/',
      headers: { 'content-type': 'application/json' },
      payload: text
    })
    t.equal(res.statusCode, 400, occupation)
    t.same(res.json(), { profile: { occupation: [message] } }, occupation)
  }
  const age = await app.inject({
    method: 'POST',
    url: '/api/users/',
    headers: { 'content-type': 'application/json' },
    payload: `{"username":"agey","password":"password1","profile":{"name":"a","gender":1,"age":1e20,"identify_id":"110101199003074477"}}`
  })
  t.equal(age.statusCode, 400)
  const trimmed = await app.inject({
    method: 'POST',
    url: '/api/users/',
    payload: {
      username: '  spaced  ',
      password: 'password1',
      email: ' s@example.com ',
      profile: { ...profile, name: ' 张三 ' }
    }
  })
  t.equal(trimmed.statusCode, 200, trimmed.body)
  t.equal(trimmed.json().username, 'spaced')
  t.equal(trimmed.json().email, 's@example.com')
  t.equal(trimmed.json().profile.name, '张三')
  t.equal(trimmed.json().profile.name_pinyin, 'zhangsan')
  t.equal((await login(app, 'spaced', 'password1')).access.split('.').length, 3)
})
