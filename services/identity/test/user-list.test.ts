import t from 'tap'
import type { Test } from 'tap'
import { build, ADMIN, login, bearer, SEED_PROFILE } from './helper.js'

type App = Awaited<ReturnType<typeof build>>

async function setUp(t: Test) {
  const app = await build(t)
  const admin = bearer((await login(app, ADMIN.username, ADMIN.password)).access)
  const sql = async <T = Record<string, unknown>>(text: string, params: unknown[] = []) =>
    (await app.orm.em.fork().getConnection().execute(text, params)) as T[]
  return { app, admin, sql }
}

async function create(app: App, username: string, profile?: Record<string, unknown>) {
  const res = await app.inject({
    method: 'POST',
    url: '/api/users/',
    payload: { username, password: 'password1', ...(profile ? { profile: { ...SEED_PROFILE, ...profile } } : {}) }
  })
  if (res.statusCode !== 200) throw new Error(`register ${username}: ${res.statusCode} ${res.body}`)
  return res.json() as { id: number; username: string }
}

async function list(app: App, admin: Record<string, string>, query: Record<string, string>) {
  const res = await app.inject({ method: 'GET', url: '/api/users/', query, headers: admin })
  return res
}

const usernames = (res: { json(): unknown }) => (res.json() as { username: string }[]).map((u) => u.username).sort()

t.test('search matches each field on its own', async (t) => {
  const { app, admin } = await setUp(t)
  await create(app, 'shiyi', { name: '试', phone: '13800000001' }) // pinyin shi, initials s
  await create(app, 'zsan', { name: '张三', phone: '13912345678' }) // pinyin zhangsan, initials zs
  await create(app, 'bare') // no profile
  const search = async (term: string) => usernames(await list(app, admin, { search: term, limit: '1000' }))

  t.test('each field alone, case-insensitive, from one character on', async (t) => {
    t.same(await search('zhangsan'), ['zsan'], 'full pinyin')
    t.same(await search('ZhangSan'), ['zsan'], 'pinyin, other case')
    t.same(await search('ngsa'), ['zsan'], 'pinyin substring')
    t.same(await search('zs'), ['zsan'], 'initials')
    t.same(await search('ZS'), ['zsan'], 'initials, other case')
    t.same(await search('张三'), ['zsan'], 'Chinese name')
    t.same(await search('三'), ['zsan'], 'one Chinese character')
    t.same(await search('试'), ['shiyi'])
    t.same(await search('1234'), ['zsan'], 'phone')
    t.same(await search('13'), ['shiyi', 'zsan'], 'phone, two characters')
    t.same(await search('BAR'), ['bare'], 'username')
    t.same(await search('ar'), ['bare'], 'username, two characters')
  })

  t.test('a match never spans two fields', async (t) => {
    // Each of these is found in the fields joined with `|` (the old rule), and in no field alone.
    const across = ['试|shi', '试|', '|shi', 'shi|s', 'zhangsan|zs', 'san|zs', 'sanzs', 'zs|139', 'zs139']
    across.push('三zh', '三z', 'n|')
    for (const term of across) {
      t.same(await search(term), [], term)
    }
  })

  t.test('odd characters are taken literally', async (t) => {
    await create(app, 'pct', { name: '百分%号' })
    await create(app, 'under', { name: 'a_b' })
    await create(app, 'back', { name: 'x\\y' })
    await create(app, 'mark', { name: 'Zoe\u0308' }) // e + combining diaeresis
    await create(app, 'wide', { name: 'ＡＢＣ' }) // full-width
    t.same(await search('%'), ['pct'])
    t.same(await search('%号'), ['pct'])
    t.same(await search('分%号'), ['pct'])
    t.same(await search('%%'), [])
    t.same(await search('_'), ['under'])
    t.same(await search('a_b'), ['under'])
    t.same(await search('a%b'), [])
    t.same(await search('ab'), [])
    t.same(await search('\\'), ['back'])
    t.same(await search('x\\y'), ['back'])
    t.same(await search('x\\\\y'), [])
    t.same(await search('\\%'), [])
    t.same(await search('e\u0308'), ['mark'], 'the combining sequence as sent')
    t.same(await search('oe\u0308'), ['mark'])
    t.same(await search('\u0308'), ['mark'], 'the combining mark alone')
    t.same(await search('\u00eb'), [], 'the precomposed letter is another string')
    t.same(await search('oë'), [])
    t.same(await search('ＡＢＣ'), ['wide'])
    t.same(await search('ａｂ'), ['wide'], 'full-width, other case')
    t.same(await search('abc'), [], 'ASCII is not full-width')
    t.same(await search('AB'), [])
  })

  t.test('search combines with the other filters', async (t) => {
    t.same(usernames(await list(app, admin, { search: '13', gender: '0' })), ['shiyi', 'zsan'])
    t.same(usernames(await list(app, admin, { search: '13', gender: '1' })), [])
    const res = await list(app, admin, { search: '13', limit: '1' })
    t.equal(res.headers['x-total-count'], '2')
    t.equal((res.json() as unknown[]).length, 1)
  })
})

t.test('the search keys follow every change of a searched field', async (t) => {
  const { app, admin, sql } = await setUp(t)
  const search = async (term: string) => usernames(await list(app, admin, { search: term, limit: '1000' }))
  // What the table holds against the keys recomputed from the fields: equal for every user, always.
  const consistent = async (label: string) => {
    const [drift] = await sql<{ n: number }>(`select count(*)::int as n from (
      (select key, user_id from user_search_key
       except select k, u.id from app_user u, user_search_keys(u.username) k
       except select k, p.user_id from profile p, user_search_keys(p.name, p.name_pinyin, p.name_initials, p.phone) k)
      union all
      (select k, u.id from app_user u, user_search_keys(u.username) k
       union select k, p.user_id from profile p, user_search_keys(p.name, p.name_pinyin, p.name_initials, p.phone) k
       except select key, user_id from user_search_key)) d`)
    t.equal(drift.n, 0, `${label}: user_search_key matches the fields`)
  }
  const patch = (id: number, payload: object) =>
    app.inject({ method: 'PATCH', url: `/api/users/${id}/`, payload, headers: admin })

  const wang = await create(app, 'wangli', { name: '王丽', phone: '13700001111' }) // pinyin wangli
  const long = 'a'.repeat(20) + 'B'.repeat(20) + 'tail'
  await create(app, long)
  const rare = await create(app, 'rare', { name: '\u{10FFFF}\u{10FFFF}x' })
  await consistent('created')
  t.same(await search('wangli'), ['wangli'], 'username and pinyin both match: listed once')
  t.equal((await list(app, admin, { search: 'wangli' })).headers['x-total-count'], '1')

  t.equal((await patch(wang.id, { profile: { name: '李四', phone: '' } })).statusCode, 200)
  await consistent('renamed')
  t.same(await search('丽'), [], 'the old name is gone')
  t.same(await search('李四'), ['wangli'], 'the new name is found')
  t.same(await search('1111'), [], 'the old phone is gone')
  t.same(await search('angl'), ['wangli'], 'the username still has what the old pinyin shared with it')

  t.same(await search('a'.repeat(18) + 'bb'), [long], 'across the change of case')
  t.same(await search('a'.repeat(20) + 'B'.repeat(20) + 'ta'), [long], 'longer than a key: checked against the field')
  t.same(await search('a'.repeat(20) + 'B'.repeat(20) + 'tx'), [], 'longer than a key, first 32 characters alike')
  t.same(await search('\u{10FFFF}'), ['rare'], 'the last code point')
  t.same(await search('\u{10FFFF}\u{10FFFF}'), ['rare'])
  t.same(await search('\u{10FFFF}x'), ['rare'])
  t.same(await search('\u{10FFFF}\u{10FFFF}\u{10FFFF}'), [])
  t.same(await search('\u{D7FF}'), [], 'the code point before the surrogates')

  // Writers of one user take turns on its row: racing renames leave the keys of the last one.
  const names = ['甲', '乙', '丙', '丁', '戊', '己']
  const results = await Promise.all(names.map((name) => patch(rare.id, { profile: { name } })))
  t.same(
    results.map((r) => r.statusCode),
    names.map(() => 200)
  )
  await consistent('after racing renames')
  const shown = await Promise.all(names.map((name) => search(name)))
  t.equal(shown.filter((found) => found.length === 1).length, 1, 'exactly one of the racing names is found')

  // No route renames a user; the trigger is there for whatever writes the column (an operator, a migration).
  await sql("update app_user set username = 'liwang' where id = ?", [wang.id])
  await consistent('username changed')
  t.same(await search('angl'), [], "the old username's keys are gone")
  t.same(await search('liw'), ['liwang'])
  await sql('delete from profile where user_id = ?', [wang.id])
  await consistent('profile deleted')
  t.same(await search('李四'), [])
  t.same(await search('liw'), ['liwang'], 'the username keeps its keys')

  t.equal((await app.inject({ method: 'DELETE', url: `/api/users/${wang.id}/`, headers: admin })).statusCode, 200)
  await consistent('deleted')
  const [left] = await sql<{ n: number }>('select count(*)::int as n from user_search_key where user_id = ?', [wang.id])
  t.equal(left.n, 0, "a deleted user's keys go with it")
  await sql('truncate profile')
  await consistent('profiles emptied')
  t.same(await search('wangli'), [])
  t.same(await search('rare'), ['rare'], 'the usernames keep their keys')
})

t.test('counts of filtered lists stay exact through every change', async (t) => {
  const { app, admin, sql } = await setUp(t)
  await sql("insert into occupation_replica (id, name, version) values (7, 'nurse', 1), (8, 'doctor', 1)")
  await sql("insert into group_replica (id, name, version) values (3, 'ward', 1), (4, 'lab', 1)")
  const a = await create(app, 'counta', { gender: 0, occupation: 7 })
  const b = await create(app, 'countb', { gender: 1, occupation: 7 })
  const c = await create(app, 'countc', { gender: 0, occupation: 8 })
  await create(app, 'countd')
  const members = async (group: number, users: number[]) =>
    app.inject({ method: 'POST', url: `/api/groups/${group}/users/`, payload: { users }, headers: admin })
  t.equal((await members(3, [a.id, b.id])).statusCode, 200)
  t.equal((await members(4, [a.id])).statusCode, 200)

  // Each filter's count against the rows the same list shows.
  const check = async (t: Test, label: string) => {
    const queries: Record<string, string>[] = [
      {},
      { gender: '0' },
      { gender: '1' },
      { occupation: '7' },
      { occupation: '8' },
      { occupation: '9' },
      { group: '3' },
      { group: '4' },
      { is_active: 'true' },
      { is_active: 'false' },
      { gender: '0', occupation: '7' }
    ]
    for (const query of queries) {
      const res = await list(app, admin, { ...query, limit: '1000' })
      t.equal(res.statusCode, 200)
      const shown = (res.json() as unknown[]).length
      t.equal(Number(res.headers['x-total-count']), shown, `${label}: ${JSON.stringify(query)}`)
    }
    const members3 = await app.inject({ method: 'GET', url: '/api/groups/3/users/', headers: admin })
    const shown = (members3.json() as unknown[]).length
    t.equal(Number(members3.headers['x-total-count']), shown, `${label}: group 3's members`)
  }
  await check(t, 'created')
  t.equal((await list(app, admin, { gender: '0' })).headers['x-total-count'], '2')

  const patch = (id: number, payload: object) =>
    app.inject({ method: 'PATCH', url: `/api/users/${id}/`, payload, headers: admin })
  t.equal((await patch(a.id, { profile: { gender: 1, occupation: 8 } })).statusCode, 200)
  t.equal((await patch(b.id, { is_active: false })).statusCode, 200)
  await check(t, 'updated')
  t.equal((await list(app, admin, { is_active: 'false' })).headers['x-total-count'], '1')
  t.equal((await app.inject({ method: 'DELETE', url: `/api/groups/3/users/${b.id}/`, headers: admin })).statusCode, 200)
  t.equal((await app.inject({ method: 'DELETE', url: `/api/users/${c.id}/`, headers: admin })).statusCode, 200)
  await check(t, 'deleted')
  t.equal((await list(app, admin, { occupation: '8' })).headers['x-total-count'], '1')
})

t.test('cursor pages', async (t) => {
  const { app, admin } = await setUp(t)
  for (let i = 0; i < 7; i++) await create(app, `cur${i}`, { name: i % 2 ? '王五' : '赵六' })
  const all = (await list(app, admin, { limit: '1000' })).json() as { id: number }[]
  const linkOf = (res: { headers: Record<string, unknown> }, rel: string) => {
    const header = String(res.headers.link ?? '')
    const match = new RegExp(`<([^>]*)>; rel="${rel}"`).exec(header)
    return match?.[1]
  }
  const follow = (url: string) => app.inject({ method: 'GET', url, headers: admin })

  t.test('round trip: forward to the end, then back to the start', async (t) => {
    const first = await list(app, admin, { cursor: '', limit: '3' })
    t.equal(first.statusCode, 200)
    t.equal(first.headers['x-total-count'], String(all.length))
    t.notOk(linkOf(first, 'prev'), 'the first page has no previous one')
    const seen: number[] = []
    const pages = [first]
    let res = first
    for (;;) {
      seen.push(...(res.json() as { id: number }[]).map((u) => u.id))
      const next = linkOf(res, 'next')
      if (!next) break
      t.match(next, /^\/api\/users\/\?(.*&)?cursor=[A-Za-z0-9_-]+/)
      t.notMatch(next, /offset=/)
      res = await follow(next)
      t.equal(res.statusCode, 200)
      t.equal(res.headers['x-total-count'], String(all.length))
      pages.push(res)
    }
    t.same(
      seen,
      all.map((u) => u.id),
      'every user once, in id order'
    )
    t.equal(pages.length, Math.ceil(all.length / 3))
    // Back from the last page, page by page, to the same pages.
    for (let i = pages.length - 1; i > 0; i--) {
      const prev = linkOf(res, 'prev')
      t.ok(prev, `page ${i} has a previous one`)
      res = await follow(prev!)
      const ids = (r: { json(): unknown }) => (r.json() as { id: number }[]).map((u) => u.id)
      t.same(ids(res), ids(pages[i - 1]))
    }
  })

  t.test('with a filter, the cursor walks the matching users only', async (t) => {
    const filters: Record<string, string>[] = [{ search: '王五' }, { gender: '0' }, { gender: '0', search: '五' }]
    for (const filter of filters) {
      const wanted = usernames(await list(app, admin, { ...filter, limit: '1000' }))
      t.ok(wanted.length >= 3, JSON.stringify(filter))
      let res = await list(app, admin, { ...filter, cursor: '', limit: '2' })
      const seen: string[] = []
      for (;;) {
        t.equal(res.headers['x-total-count'], String(wanted.length))
        seen.push(...usernames(res))
        const next = linkOf(res, 'next')
        if (!next) break
        res = await follow(next)
      }
      t.same(seen.sort(), wanted, JSON.stringify(filter))
      // And back from the last page to the first, by `prev` links.
      const back: string[] = [...usernames(res)]
      for (let prev = linkOf(res, 'prev'); prev; prev = linkOf(res, 'prev')) {
        res = await follow(prev)
        t.equal(res.statusCode, 200)
        back.push(...usernames(res))
      }
      t.same(back.sort(), wanted, `${JSON.stringify(filter)}, backwards`)
    }
  })

  t.test('a search at the largest offset is an empty page, not an overflow', async (t) => {
    for (const search of ['五', '王五']) {
      const res = await list(app, admin, { search, offset: '2147483647', limit: '1000' })
      t.equal(res.statusCode, 200, search)
      t.same(res.json(), [])
      t.ok(Number(res.headers['x-total-count']) >= 3)
    }
  })

  t.test('limit and offset work as before, with offset links', async (t) => {
    const res = await list(app, admin, { limit: '2', offset: '2' })
    t.same(
      (res.json() as { id: number }[]).map((u) => u.id),
      all.slice(2, 4).map((u) => u.id)
    )
    t.match(linkOf(res, 'next'), /offset=4/)
    t.match(linkOf(res, 'prev'), /offset=0/)
  })

  t.test('a cursor this code did not write is a 400 in the field-error shape', async (t) => {
    const first = await list(app, admin, { cursor: '', limit: '2' })
    const valid = new URL(linkOf(first, 'next')!, 'http://x').searchParams.get('cursor')!
    const flipped = valid.slice(0, -1) + (valid.endsWith('A') ? 'B' : 'A')
    const b64 = (s: string) => Buffer.from(s).toString('base64url')
    const [position, check] = Buffer.from(valid, 'base64url').toString().split('.')
    t.match(position, /^a[0-9]+$/)
    const id = Number(position.slice(1))
    const bad = [
      flipped,
      valid.slice(0, -2),
      `${valid}=`,
      `${valid}A`,
      'x',
      '!!!!',
      '%00',
      'a'.repeat(64),
      // another position with the check of this one, or with no check
      b64(`a${id + 1}.${check}`),
      b64(`b${id}.${check}`),
      b64(position),
      b64(`${position}.`),
      b64(`${position}.${check}x`),
      b64(`${position}.${check.toUpperCase()}`),
      b64(`a0${id}.${check}`),
      b64(` ${position}.${check}`),
      b64(`a-1.${check}`),
      b64(`a2147483648.${check}`),
      b64(`c${id}.${check}`),
      b64(`${position}\u0000.${check}`),
      Buffer.from(`${position}.${check}`).toString('base64') + '=',
      b64('{"after":1}')
    ]
    for (const cursor of bad) {
      const res = await list(app, admin, { cursor })
      t.equal(res.statusCode, 400, `cursor ${JSON.stringify(cursor)}: ${res.body}`)
      t.same(res.json(), { cursor: ['请输入合法的值。'] }, JSON.stringify(cursor))
    }
    const long = await list(app, admin, { cursor: 'A'.repeat(65) })
    t.equal(long.statusCode, 400)
    t.same(Object.keys(long.json()), ['cursor'])
    const withOffset = await list(app, admin, { cursor: valid, offset: '10' })
    t.equal(withOffset.statusCode, 400)
    t.same(withOffset.json(), { cursor: ['请输入合法的值。'] })
    const headers = { ...admin, 'accept-language': 'en' }
    const en = await app.inject({ method: 'GET', url: '/api/users/?cursor=x', headers })
    t.same(en.json(), { cursor: ['Enter a valid value.'] })
  })

  t.test('a cursor past either end is an empty page that links back', async (t) => {
    const forward = await list(app, admin, { cursor: '', limit: '1000' })
    t.notOk(linkOf(forward, 'next'), 'one page holds them all')
    // The last user's own cursor (the next page's, were there more): found by paging 1 at a time.
    let res = await list(app, admin, { cursor: '', limit: '1' })
    let last = res
    for (let next = linkOf(res, 'next'); next; next = linkOf(res, 'next')) {
      last = res
      res = await follow(next)
    }
    t.same(
      (res.json() as { id: number }[]).map((u) => u.id),
      [all[all.length - 1].id],
      'the last page'
    )
    t.notOk(linkOf(res, 'next'))
    t.ok(linkOf(res, 'prev'))
    t.same((await follow(linkOf(res, 'prev')!)).json(), last.json(), 'back one page')
  })
})
