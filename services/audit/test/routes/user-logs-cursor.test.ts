import t from 'tap'
import { buildSystem, get, sql } from '../helper.js'

t.test('user logs by cursor', async (t) => {
  const sys = await buildSystem(t)
  const { audit, admin } = sys
  const USER = 424242
  // 25 rows of one user, several sharing a time (to the microsecond), across two months.
  await sql(
    audit,
    `insert into user_log (event_id, user_id, operation, operator_id, operate_time)
     select gen_random_uuid(), ?, g % 3, ?,
            date_trunc('month', now()) + interval '1.234567 second' - (g / 3) * interval '9 days'
     from generate_series(1, 25) g`,
    [USER, USER]
  )

  const pageAt = async (url: string) => {
    const res = await get(audit, url, admin.access)
    if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`)
    return {
      ids: (res.json() as { id: number }[]).map((r) => r.id),
      total: res.headers['x-total-count'],
      link: String(res.headers.link ?? '')
    }
  }
  const walk = async (first: string) => {
    const ids: number[] = []
    const totals = new Set<unknown>()
    let url: string | undefined = first
    let pages = 0
    while (url) {
      const page = await pageAt(url)
      ids.push(...page.ids)
      totals.add(page.total)
      t.notMatch(page.link, /rel="prev"/)
      url = /<([^>]+)>; rel="next"/.exec(page.link)?.[1]
      if (++pages > 20) throw new Error('no end')
    }
    return { ids, totals: [...totals] }
  }

  for (const [name, query] of [
    ['every row', `user=${USER}`],
    ['failed attempts', `user=${USER}&operation=2`],
    ['a time window', `user=${USER}&since=${encodeURIComponent(new Date(Date.now() - 40 * 86_400_000).toISOString())}`]
  ]) {
    t.test(`pages by cursor are the pages by offset: ${name}`, async (t) => {
      const all = await pageAt(`/api/user-logs/?${query}&limit=1000`)
      const walked = await walk(`/api/user-logs/?${query}&limit=4&cursor=`)
      t.same(walked.ids, all.ids, 'same rows, same order, none twice')
      t.same(walked.totals, [all.total], 'every page tells the total')
      t.ok(all.ids.length > 0)
    })
  }

  t.test("one user's logs by cursor", async (t) => {
    const all = await pageAt(`/api/users/${USER}/user-logs/?limit=1000`)
    const walked = await walk(`/api/users/${USER}/user-logs/?limit=7&cursor=`)
    t.same(walked.ids, all.ids)
  })

  t.test('the cursor wins over offset', async (t) => {
    const first = await pageAt(`/api/user-logs/?user=${USER}&limit=5&cursor=`)
    const withOffset = await pageAt(`/api/user-logs/?user=${USER}&limit=5&offset=10&cursor=`)
    t.same(withOffset.ids, first.ids)
  })

  t.test('a cursor this service did not make is a field error', async (t) => {
    for (const cursor of [
      'x',
      'not a cursor',
      Buffer.from('1.2.3').toString('base64url'),
      Buffer.from('1.99999999999').toString('base64url'),
      '%00'
    ]) {
      const res = await get(audit, `/api/user-logs/?cursor=${encodeURIComponent(cursor)}`, admin.access, {
        'accept-language': 'en'
      })
      t.equal(res.statusCode, 400, cursor)
      t.same(res.json(), { cursor: ['Enter a valid value.'] }, cursor)
    }
    const long = await get(audit, `/api/user-logs/?cursor=${'A'.repeat(65)}`, admin.access)
    t.equal(long.statusCode, 400)
  })
})
