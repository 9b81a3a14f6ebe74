import { eventually } from '@roster/service-kit/testing'
import t from 'tap'
import { buildSystem, newUser, sql, get, bearer, envelope, publish, type System } from '../helper.js'

const CLIENT = { 'x-forwarded-for': '203.0.113.7', 'user-agent': 'RosterTest/1.0 (audit)' }
const RFC3339_SHANGHAI = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00$/

t.test('user logs', async (t) => {
  const sys: System = await buildSystem(t)
  const { identity, audit, admin } = sys

  async function logsOf(userId: number, query = '') {
    const res = await get(audit, `/api/users/${userId}/user-logs/${query}`, admin.access)
    if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${res.body}`)
    return res.json() as any[]
  }

  t.test('a login and a logout through identity appear in the log, once each, with address and agent', async (t) => {
    const user = await newUser(sys)
    const started = Date.now()
    const login = await identity.inject({
      method: 'POST',
      url: '/api/auth/',
      headers: CLIENT,
      payload: { username: user.username, password: user.password }
    })
    t.equal(login.statusCode, 200, login.body)
    // The contract: a login is in the log within one second.
    const answered = Date.now()
    await eventually(
      async () =>
        (
          await sql(audit, 'select 1 from user_log where user_id = ? and user_agent = ?', [
            user.id,
            CLIENT['user-agent']
          ])
        ).length > 0,
      { timeoutMs: 1000, intervalMs: 5 }
    )
    t.comment(`login in the log ${Date.now() - answered} ms after identity answered`)
    const [entry] = (await logsOf(user.id)).filter((l) => l.user_agent === CLIENT['user-agent'])
    t.match(entry, {
      user: user.id,
      operator: user.id,
      operation: 0,
      ip: '203.0.113.7',
      user_agent: CLIENT['user-agent']
    })
    t.match(entry.operate_time, RFC3339_SHANGHAI)
    t.notOk('username' in entry, 'username is shown on failed attempts only')
    t.ok(Math.abs(Date.parse(entry.operate_time) - started) < 5000, 'operate_time is when it happened')

    const { access } = login.json()
    const logout = await identity.inject({
      method: 'GET',
      url: '/api/auth/logout/',
      headers: { ...bearer(access), ...CLIENT }
    })
    t.equal(logout.statusCode, 200, logout.body)
    const logs = await eventually(async () => {
      const logs = await logsOf(user.id)
      return logs.some((l) => l.operation === 1) ? logs : null
    })
    const out = logs.filter((l) => l.operation === 1)
    t.equal(out.length, 1, 'one logout row')
    t.match(out[0], { user: user.id, operator: user.id, ip: '203.0.113.7', user_agent: CLIENT['user-agent'] })
    t.equal(logs[0].operation, 1, 'newest first: the logout leads')
    t.equal(logs.filter((l) => l.operation === 0).length, 2, 'the helper login and this one')
    t.same(
      logs.map((l) => l.id),
      [...logs]
        .sort((a, b) =>
          a.operate_time === b.operate_time ? b.id - a.id : Date.parse(b.operate_time) - Date.parse(a.operate_time)
        )
        .map((l) => l.id)
    )
  })

  t.test('failed attempts are operation 2, listed only when asked for', async (t) => {
    const user = await newUser(sys)
    const ghost = `ghost_${Date.now()}`
    for (const username of [user.username, ghost]) {
      const res = await identity.inject({
        method: 'POST',
        url: '/api/auth/',
        headers: CLIENT,
        payload: { username, password: 'wrong-password' }
      })
      t.equal(res.statusCode, 401)
    }
    const failed = await eventually(async () => {
      const res = await get(audit, `/api/user-logs/?operation=2`, admin.access)
      const rows = (res.json() as any[]).filter((l) => l.username === user.username || l.username === ghost)
      return rows.length === 2 ? rows : null
    })
    const mine = failed.find((l) => l.username === user.username)
    const theirs = failed.find((l) => l.username === ghost)
    t.match(mine, { user: user.id, operation: 2, operator: null, ip: '203.0.113.7', user_agent: CLIENT['user-agent'] })
    t.match(theirs, { user: null, operation: 2, username: ghost })

    const all = (await get(audit, '/api/user-logs/?limit=1000', admin.access)).json() as any[]
    t.notOk(
      all.some((l) => l.operation === 2),
      'the default list hides failed attempts'
    )
    t.notOk(
      (await logsOf(user.id)).some((l) => l.operation === 2),
      "so does a user's list"
    )
    const own = await logsOf(user.id, '?operation=2')
    t.same(
      own.map((l) => l.id),
      [mine.id]
    )
    const single = await get(audit, `/api/user-logs/${mine.id}/`, user.access)
    t.equal(single.statusCode, 200, 'a user may read a failed attempt on its own account')
    t.equal(single.json().username, user.username)
  })

  t.test('permissions', async (t) => {
    const alice = await newUser(sys)
    const bob = await newUser(sys)
    const [aliceLog] = await eventually(async () => {
      const logs = await logsOf(alice.id)
      return logs.length > 0 ? logs : null
    })

    t.test('the full list is for admins', async (t) => {
      t.equal((await get(audit, '/api/user-logs/')).statusCode, 401)
      const anonymous = await get(audit, '/api/user-logs/')
      t.equal(anonymous.headers['www-authenticate'], 'Bearer realm="api"')
      t.same(anonymous.json(), { detail: '身份认证信息未提供。' })
      const user = await get(audit, '/api/user-logs/', alice.access)
      t.equal(user.statusCode, 403)
      t.same(user.json(), { detail: '您没有执行该操作的权限。' })
      const en = await get(audit, '/api/user-logs/', alice.access, { 'accept-language': 'en' })
      t.same(en.json(), { detail: 'You do not have permission to perform this action.' })
      t.equal((await get(audit, '/api/user-logs', admin.access)).statusCode, 200, 'without the trailing slash too')
      const bad = await get(audit, '/api/user-logs/', 'not-a-token')
      t.equal(bad.statusCode, 401)
      t.equal(bad.json().code, 'token_not_valid')
    })

    t.test('one record: its owner or an admin', async (t) => {
      t.equal((await get(audit, `/api/user-logs/${aliceLog.id}/`)).statusCode, 401)
      const own = await get(audit, `/api/user-logs/${aliceLog.id}/`, alice.access)
      t.equal(own.statusCode, 200)
      t.same(own.json(), aliceLog)
      t.equal((await get(audit, `/api/user-logs/${aliceLog.id}/`, bob.access)).statusCode, 403, "another user's record")
      t.equal(
        (await get(audit, '/api/user-logs/99999999/', bob.access)).statusCode,
        403,
        'a missing record looks the same to a user'
      )
      t.equal((await get(audit, `/api/user-logs/${aliceLog.id}/`, admin.access)).statusCode, 200)
      t.equal((await get(audit, '/api/user-logs/99999999/', admin.access)).statusCode, 404)
      for (const pk of ['abc', '0', '99999999999', '-1']) {
        t.equal((await get(audit, `/api/user-logs/${pk}/`, admin.access)).statusCode, 404, `pk ${pk}`)
      }
    })

    t.test("a user's records: self or admin", async (t) => {
      t.equal((await get(audit, `/api/users/${alice.id}/user-logs/`)).statusCode, 401)
      t.equal((await get(audit, `/api/users/${alice.id}/user-logs/`, alice.access)).statusCode, 200)
      t.equal((await get(audit, `/api/users/${alice.id}/user-logs/`, bob.access)).statusCode, 403)
      t.equal((await get(audit, '/api/users/99999999/user-logs/', bob.access)).statusCode, 403, 'no probing of ids')
      t.equal((await get(audit, `/api/users/${alice.id}/user-logs/`, admin.access)).statusCode, 200)
      const unknown = await get(audit, '/api/users/99999999/user-logs/', admin.access)
      t.equal(unknown.statusCode, 404)
      t.same(unknown.json(), { detail: '未找到。' })
      t.equal((await get(audit, '/api/users/abc/user-logs/', admin.access)).statusCode, 404)
    })

    t.test('a user audit has not heard of yet is asked of identity once, then remembered', async (t) => {
      const carol = await newUser(sys, { login: false })
      await sql(audit, 'delete from known_user where id = ?', [carol.id])
      const res = await get(audit, `/api/users/${carol.id}/user-logs/`, admin.access)
      t.equal(res.statusCode, 200, res.body)
      t.same(res.json(), [])
      t.equal(res.headers['x-total-count'], '0')
      t.equal((await sql(audit, 'select 1 from known_user where id = ?', [carol.id])).length, 1, 'cached in known_user')
    })

    t.test("a deleted user's history stays readable by admins", async (t) => {
      const dave = await newUser(sys)
      const before = await eventually(async () => {
        const logs = await logsOf(dave.id)
        return logs.length > 0 ? logs : null
      })
      const del = await identity.inject({
        method: 'DELETE',
        url: `/api/users/${dave.id}/`,
        headers: bearer(admin.access)
      })
      t.equal(del.statusCode, 200, del.body)
      await eventually(
        async () =>
          (await sql(audit, 'select 1 from known_user where id = ? and deleted_at is not null', [dave.id])).length === 1
      )
      t.same(await logsOf(dave.id), before)
    })
  })

  t.test('filters, order and pages', async (t) => {
    // A user of its own, fed straight from events with chosen times, so the expected list is exact.
    const userId = 700000 + Math.floor(Math.random() * 100000)
    await publish(
      audit,
      'identity.user.created',
      envelope('identity.user.created', {
        user_id: userId,
        username: `u${userId}`,
        is_staff: false,
        is_active: true,
        version: 1,
        actor: null
      })
    )
    const base = Date.parse('2024-03-01T00:00:00.000Z')
    const at = (minutes: number) => new Date(base + minutes * 60_000)
    const session = {
      session_id: 's',
      user_id: userId,
      username: `u${userId}`,
      ip: '198.51.100.1',
      user_agent: 'filters'
    }
    // Published out of time order on purpose; two share one instant.
    const plan: [number, 0 | 1 | 2][] = [
      [30, 1],
      [0, 0],
      [50, 0],
      [10, 1],
      [30, 0],
      [20, 2],
      [40, 1]
    ]
    for (const [minutes, operation] of plan) {
      const when = at(minutes)
      if (operation === 0)
        await publish(audit, 'identity.session.login', envelope('identity.session.login', session, when))
      if (operation === 1) {
        await publish(
          audit,
          'identity.session.logout',
          envelope('identity.session.logout', { ...session, operator: admin.id }, when)
        )
      }
      if (operation === 2) {
        await publish(
          audit,
          'identity.session.login_failed',
          envelope('identity.session.login_failed', { ...session, reason: 'bad_credentials' }, when)
        )
      }
    }
    const all = await eventually(async () => {
      const rows = await sql(audit, 'select id from user_log where user_id = ?', [userId])
      return rows.length === plan.length ? logsOf(userId) : null
    })
    t.equal(all.length, 6, 'the failed attempt is not listed')
    t.same(
      all.map((l) => [l.operate_time, l.operation]),
      [
        ['2024-03-01T08:50:00.000+08:00', 0],
        ['2024-03-01T08:40:00.000+08:00', 1],
        ['2024-03-01T08:30:00.000+08:00', 0],
        ['2024-03-01T08:30:00.000+08:00', 1],
        ['2024-03-01T08:10:00.000+08:00', 1],
        ['2024-03-01T08:00:00.000+08:00', 0]
      ],
      'newest first; a tie goes to the higher id (written later)'
    )
    t.ok(all[2].id > all[3].id)
    t.equal(all[1].operator, admin.id, 'the operator of a logout is who ended the session')

    const list = async (query: string) => {
      const res = await get(audit, `/api/user-logs/?user=${userId}&${query}`, admin.access)
      t.equal(res.statusCode, 200, `${query}: ${res.body}`)
      return {
        rows: res.json() as any[],
        total: Number(res.headers['x-total-count']),
        link: res.headers.link as string | undefined
      }
    }
    t.equal((await list('')).rows.length, 6)
    t.same(
      (await list('operation=1')).rows.map((l) => l.operate_time.slice(11, 16)),
      ['08:40', '08:30', '08:10']
    )
    t.same(
      (await list('operation=2')).rows.map((l) => l.operate_time.slice(11, 16)),
      ['08:20']
    )
    const window = await list(`since=${encodeURIComponent('2024-03-01T08:10:00+08:00')}&until=2024-03-01T00:40:00Z`)
    t.same(
      window.rows.map((l) => l.operate_time.slice(11, 16)),
      ['08:40', '08:30', '08:30', '08:10'],
      'since and until are inclusive'
    )
    const unencoded = await list('since=2024-03-01T08:40:00.000+08:00')
    t.same(
      unencoded.rows.map((l) => l.operate_time.slice(11, 16)),
      ['08:50', '08:40'],
      'an unencoded + in the offset still works'
    )
    const own = await get(audit, `/api/users/${userId}/user-logs/?operation=0&since=2024-03-01T00:30:00Z`, admin.access)
    t.same(
      (own.json() as any[]).map((l) => l.operate_time.slice(11, 16)),
      ['08:50', '08:30']
    )

    const page1 = await list('limit=2')
    t.equal(page1.total, 6)
    t.same(
      page1.rows.map((l) => l.id),
      all.slice(0, 2).map((l) => l.id)
    )
    t.match(page1.link, /<[^>]*limit=2&offset=2>; rel="next"/)
    t.notMatch(page1.link, /rel="prev"/)
    const page2 = await list('limit=2&offset=2')
    t.same(
      page2.rows.map((l) => l.id),
      all.slice(2, 4).map((l) => l.id)
    )
    t.match(page2.link, /offset=4>; rel="next"/)
    t.match(page2.link, /offset=0>; rel="prev"/)
    const last = await list('limit=4&offset=4')
    t.equal(last.total, 6)
    t.same(
      last.rows.map((l) => l.id),
      all.slice(4).map((l) => l.id)
    )
    t.notMatch(last.link ?? '', /rel="next"/)
    const beyond = await list('limit=2&offset=100')
    t.same(beyond.rows, [])
    t.equal(beyond.total, 6)

    const everyone = await get(audit, '/api/user-logs/?limit=1', admin.access)
    const [{ n }] = await sql(audit, 'select count(*) as n from user_log where operation < 2')
    t.equal(everyone.headers['x-total-count'], String(n), 'the unfiltered total matches the rows')
    const failedTotal = await get(audit, '/api/user-logs/?operation=2&limit=1', admin.access)
    const [{ n: failedRows }] = await sql(audit, 'select count(*) as n from user_log where operation = 2')
    t.equal(failedTotal.headers['x-total-count'], String(failedRows))

    t.test('the totals stay right whoever writes the table (a bulk import, a retention purge)', async (t) => {
      const totals = async () => {
        const counted = await sql(
          audit,
          'select count(*) filter (where operation < 2) as shown, count(*) filter (where operation = 2) as failed from user_log'
        )
        const shown = (await get(audit, '/api/user-logs/?limit=1', admin.access)).headers['x-total-count']
        const failed = (await get(audit, '/api/user-logs/?operation=2&limit=1', admin.access)).headers['x-total-count']
        return { headers: [shown, failed], counted: [String(counted[0].shown), String(counted[0].failed)] }
      }
      await sql(
        audit,
        `insert into user_log (event_id, user_id, operation, operate_time)
         select gen_random_uuid(), 999999, g % 3, now() - g * interval '1 day' from generate_series(1, 30) g`
      )
      let now = await totals()
      t.same(now.headers, now.counted, 'after an import')
      await sql(audit, "delete from user_log where user_id = 999999 and operate_time < now() - interval '20 days'")
      now = await totals()
      t.same(now.headers, now.counted, 'after a purge')
    })

    t.test('bad filter values are 400 with field errors', async (t) => {
      const cases: [string, Record<string, string[]>][] = [
        ['operation=5', { operation: ['“5” 不是合法选项。'] }],
        ['operation=x', { operation: ['请填写合法的整数值。'] }],
        ['since=yesterday', { since: ['日期时间格式错误。请从这些格式中选择：RFC 3339。'] }],
        ['until=0000-01-01T00:00:00Z', { until: ['日期时间格式错误。请从这些格式中选择：RFC 3339。'] }],
        ['user=-1', { user: ['请确保该值大于或者等于 0。'] }],
        ['limit=0', { limit: ['请确保该值大于或者等于 1。'] }],
        ['limit=1001', { limit: ['请确保该值小于或者等于 1000。'] }]
      ]
      for (const [query, body] of cases) {
        const res = await get(audit, `/api/user-logs/?${query}`, admin.access)
        t.equal(res.statusCode, 400, query)
        t.same(res.json(), body, query)
      }
      const both = await get(audit, '/api/user-logs/?operation=9&since=no', admin.access)
      t.same(Object.keys(both.json()).sort(), ['operation', 'since'], 'every bad field at once')
      const ofUser = await get(audit, `/api/users/${userId}/user-logs/?until=nope`, admin.access)
      t.equal(ofUser.statusCode, 400)
      t.equal(
        (await get(audit, `/api/user-logs/?unknown=1&user=${userId}`, admin.access)).statusCode,
        200,
        'unknown parameters are ignored'
      )
    })
  })

  t.test('user logs cannot be written or changed over HTTP', async (t) => {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
      const res = await audit.inject({ method, url: '/api/user-logs/', headers: bearer(admin.access), payload: {} })
      t.equal(res.statusCode, 405, method)
    }
    const res = await audit.inject({ method: 'DELETE', url: '/api/user-logs/1/', headers: bearer(admin.access) })
    t.equal(res.statusCode, 405)
    t.match(res.json().detail, /DELETE/)
  })
})
