import t from 'tap'
import { eventually, statusCounts } from '@roster/service-kit/testing'
import { build, ADMIN, login, bearer, register, publishEvent, SEED_PROFILE } from './helper.js'

/**
 * Every write path of identity run against itself and against deletion, many requests at once on the real
 * PostgreSQL: each answer is a 2xx or the 4xx that names what happened, and the data left behind is consistent
 * (one profile, one holder of an email, no membership or session of a deleted user, one event per committed change).
 */
const PARALLEL = 24

type Res = { statusCode: number; body: string; json(): any }

const statuses = statusCounts

t.test('identity write paths under concurrency', async (t) => {
  const app = await build(t)
  const admin = await login(app, ADMIN.username, ADMIN.password)
  const auth = bearer(admin.access)
  const sql = async <T = any>(text: string, params: unknown[] = []) =>
    (await app.orm.em.fork().getConnection().execute(text, params)) as T[]
  const events = async (subject: string, where = 'true', params: unknown[] = []) =>
    (
      await sql<{ n: number }>(`select count(*)::int as n from outbox_event where subject = ? and ${where}`, [
        subject,
        ...params
      ])
    )[0].n
  const allowed = (t: { fail(message: string): unknown }, results: Res[], ok: number[]) => {
    for (const r of results) if (!ok.includes(r.statusCode)) t.fail(`unexpected ${r.statusCode}: ${r.body}`)
  }

  t.test('parallel PUT/PATCH creating the profile of a user who has none', async (t) => {
    const user = await register(app)
    const before = await events('identity.user.updated', `payload->'data'->>'user_id' = ?`, [String(user.id)])
    const results = await Promise.all(
      Array.from({ length: PARALLEL }, (_, i) =>
        app.inject({
          method: i % 2 ? 'PUT' : 'PATCH',
          url: `/api/users/${user.id}/`,
          headers: auth,
          payload: { profile: { ...SEED_PROFILE, name: `名字${i}`, age: 20 + i } }
        })
      )
    )
    t.same(statuses(results), { 200: PARALLEL }, 'every one answered 200')
    const profiles = await sql<{ n: number }>('select count(*)::int as n from profile where user_id = ?', [user.id])
    t.equal(profiles[0].n, 1, 'one profile')
    const after = await events('identity.user.updated', `payload->'data'->>'user_id' = ?`, [String(user.id)])
    t.equal(after - before, PARALLEL, 'one event per committed change')
    const versions = await sql<{ v: number }>(
      `select (payload->'data'->>'version')::int as v from outbox_event where subject = 'identity.user.updated'
       and payload->'data'->>'user_id' = ? order by v`,
      [String(user.id)]
    )
    t.equal(new Set(versions.map((r) => r.v)).size, versions.length, 'each change has its own version')
  })

  t.test('many users setting the same new email at once', async (t) => {
    const users = await Promise.all(Array.from({ length: PARALLEL }, () => register(app)))
    const email = `same.${Date.now()}@example.com`
    const results = await Promise.all(
      users.map((u, i) =>
        app.inject({
          method: 'PATCH',
          url: `/api/users/${u.id}/`,
          headers: { ...auth, 'accept-language': 'en' },
          payload: { email: i % 2 ? email : email.toUpperCase() }
        })
      )
    )
    allowed(t, results, [200, 400])
    t.equal(statuses(results)[200], 1, 'one wins')
    for (const r of results.filter((r) => r.statusCode === 400))
      t.same(r.json(), { email: ['A user with that email already exists.'] })
    const holders = await sql('select id from app_user where lower(email) = lower(?)', [email])
    t.equal(holders.length, 1, 'one holder of the email')
  })

  t.test('many registrations with the same username and email at once', async (t) => {
    const name = `same${Date.now() % 100000}`
    const results = await Promise.all(
      Array.from({ length: PARALLEL }, (_, i) =>
        app.inject({
          method: 'POST',
          url: '/api/users/',
          headers: { 'accept-language': 'en' },
          payload: {
            username: i % 2 ? name : name.toUpperCase(),
            password: 'password1',
            email: `${name}@example.com`,
            profile: SEED_PROFILE
          }
        })
      )
    )
    allowed(t, results, [200, 400])
    t.equal(statuses(results)[200], 1, 'one wins')
    for (const r of results.filter((r) => r.statusCode === 400)) {
      t.ok(r.json().username || r.json().email, r.body)
      t.notOk(r.json().detail, 'a field error')
    }
    t.equal((await sql('select 1 from app_user where lower(username) = lower(?)', [name])).length, 1)
    t.equal(await events('identity.user.created', `payload->'data'->>'username' ilike ?`, [name]), 1, 'created once')
  })

  t.test('two admins PATCHing the same user', async (t) => {
    const user = await register(app, { profile: SEED_PROFILE })
    const second = await register(app)
    await app.inject({ method: 'PATCH', url: `/api/users/${second.id}/`, headers: auth, payload: { is_staff: true } })
    const other = bearer((await login(app, second.username, 'password1')).access)
    const results = await Promise.all(
      Array.from({ length: PARALLEL }, (_, i) =>
        app.inject({
          method: 'PATCH',
          url: `/api/users/${user.id}/`,
          headers: i % 2 ? auth : other,
          payload: { profile: { address: `addr${i}` }, email: `u${user.id}.${i}@example.com` }
        })
      )
    )
    t.same(statuses(results), { 200: PARALLEL })
    const [row] = await sql<{ email: string; address: string }>(
      'select u.email, p.address from app_user u join profile p on p.user_id = u.id where u.id = ?',
      [user.id]
    )
    const last = results.map((r) => r.json()).find((u) => u.email === row.email)
    t.ok(last, 'the stored email is one of the answers')
    const versions = await sql<{ v: number }>(
      `select (payload->'data'->>'version')::int as v from outbox_event where subject = 'identity.user.updated'
       and payload->'data'->>'user_id' = ?`,
      [String(user.id)]
    )
    t.equal(new Set(versions.map((r) => r.v)).size, versions.length, 'versions strictly increase, no two alike')
  })

  t.test('PATCH, PUT, login and a second delete while the user is deleted', async (t) => {
    const users = await Promise.all(Array.from({ length: PARALLEL / 2 }, () => register(app)))
    const work = users.flatMap((u) => [
      app.inject({ method: 'DELETE', url: `/api/users/${u.id}/`, headers: auth }),
      app.inject({ method: 'DELETE', url: `/api/users/${u.id}/`, headers: auth }),
      app.inject({ method: 'PATCH', url: `/api/users/${u.id}/`, headers: auth, payload: { profile: SEED_PROFILE } }),
      app.inject({
        method: 'PUT',
        url: `/api/users/${u.id}/`,
        headers: auth,
        payload: { email: `${u.username}@example.com` }
      }),
      app.inject({ method: 'POST', url: '/api/auth/', payload: { username: u.username, password: 'password1' } })
    ])
    const results = await Promise.all(work)
    for (let i = 0; i < users.length; i++) {
      const [d1, d2, patch, put, signIn] = results.slice(i * 5, i * 5 + 5)
      t.same([d1.statusCode, d2.statusCode].sort(), [200, 404], 'one delete wins, the other finds nothing')
      allowed(t, [patch, put], [200, 404])
      allowed(t, [signIn], [200, 401, 429]) // 429: the per-address limit counts the failures of deleted accounts
    }
    const ids = users.map((u) => u.id)
    const idList = `{${ids.join(',')}}`
    t.same(await sql('select id from app_user where id = any(?::int[])', [idList]), [], 'all deleted')
    t.same(await sql('select user_id from profile where user_id = any(?::int[])', [idList]), [], 'no profile left')
    t.same(await sql('select user_id from session where user_id = any(?::int[])', [idList]), [], 'no session left')
    const deleted = await sql<{ id: number; n: number }>(
      `select (payload->'data'->>'user_id')::int as id, count(*)::int as n from outbox_event
       where subject = 'identity.user.deleted' and (payload->'data'->>'user_id')::int = any(?::int[]) group by 1`,
      [idList]
    )
    t.equal(deleted.length, ids.length, 'a deleted event for each user')
    t.ok(
      deleted.every((r) => r.n === 1),
      'and only one'
    )
  })

  t.test('members added while the users are deleted', async (t) => {
    await publishEvent(app, 'directory.group.created', {
      group_id: 501,
      version: 1,
      name: 'g501',
      location: 'l',
      contact_phone: '18888888881'
    })
    await eventually(async () => (await sql('select 1 from group_replica where id = 501')).length === 1, {
      timeoutMs: 30000
    })
    const users = await Promise.all(Array.from({ length: PARALLEL }, () => register(app)))
    const keep = await register(app)
    const work = users.flatMap((u) => [
      app.inject({
        method: 'POST',
        url: '/api/groups/501/users/',
        headers: { ...auth, 'accept-language': 'en' },
        payload: { users: [keep.id, u.id] }
      }),
      app.inject({ method: 'DELETE', url: `/api/users/${u.id}/`, headers: auth })
    ])
    const results = await Promise.all(work)
    for (let i = 0; i < users.length; i++) {
      const [add, del] = results.slice(i * 2, i * 2 + 2)
      t.equal(del.statusCode, 200, del.body)
      allowed(t, [add], [200, 400])
      if (add.statusCode === 400)
        t.same(add.json(), { users: [`Invalid pk "${users[i].id}" - object does not exist.`] })
    }
    const idList = `{${users.map((u) => u.id).join(',')}}`
    t.same(
      await sql('select user_id from membership where user_id = any(?::int[])', [idList]),
      [],
      'no membership of a deleted user'
    )
    // `keep` is a member if and only if one request got through, and its membership was announced once.
    const through = results.some((r, i) => i % 2 === 0 && r.statusCode === 200) ? 1 : 0
    t.equal(
      (await sql('select user_id from membership where group_id = 501 and user_id = ?', [keep.id])).length,
      through
    )
    t.equal(
      await events('identity.membership.added', `(payload->'data'->>'user_id')::int = ?`, [keep.id]),
      through,
      'added at most once'
    )
    const addedDeleted = await events(
      'identity.membership.added',
      `(payload->'data'->>'user_id')::int = any(?::int[])`,
      [idList]
    )
    t.equal(
      addedDeleted,
      results.filter((r, i) => i % 2 === 0 && r.statusCode === 200).length,
      'one added event per 200 for the deleted users'
    )
  })

  t.test('members added while the group is deleted', async (t) => {
    await publishEvent(app, 'directory.group.created', {
      group_id: 502,
      version: 1,
      name: 'g502',
      location: 'l',
      contact_phone: '18888888881'
    })
    await eventually(async () => (await sql('select 1 from group_replica where id = 502')).length === 1, {
      timeoutMs: 30000
    })
    const users = await Promise.all(Array.from({ length: PARALLEL }, () => register(app)))
    const adding = users.map((u) =>
      app.inject({ method: 'POST', url: '/api/groups/502/users/', headers: auth, payload: { users: [u.id] } })
    )
    const deleting = publishEvent(app, 'directory.group.deleted', { group_id: 502, version: 2 })
    const results = await Promise.all(adding)
    await deleting
    allowed(t, results, [200, 404])
    await eventually(async () => (await sql('select deleted from group_replica where id = 502'))[0]?.deleted === true, {
      timeoutMs: 30000
    })
    // The consumer's transaction committed with the tombstone: whatever was added before it is gone with it.
    t.same(await sql('select user_id from membership where group_id = 502'), [], 'no member of a deleted group')
    const added = await events('identity.membership.added', `(payload->'data'->>'group_id')::int = 502`)
    const removed = await events('identity.membership.removed', `(payload->'data'->>'group_id')::int = 502`)
    t.equal(added, statuses(results)[200] ?? 0, 'one added event per 200')
    t.equal(removed, added, 'each added membership was removed once with the group')
    const late = await app.inject({
      method: 'POST',
      url: '/api/groups/502/users/',
      headers: auth,
      payload: { users: [users[0].id] }
    })
    t.equal(late.statusCode, 404)
  })

  t.test('profiles given an occupation while the directory deletes it', async (t) => {
    await publishEvent(app, 'directory.occupation.created', { occupation_id: 601, version: 1, name: 'o601' })
    await eventually(async () => (await sql('select 1 from occupation_replica where id = 601')).length === 1, {
      timeoutMs: 30000
    })
    const users = await Promise.all(Array.from({ length: PARALLEL }, () => register(app, { profile: SEED_PROFILE })))
    const setting = users.map((u, i) =>
      app.inject({
        method: i % 2 ? 'PATCH' : 'PUT',
        url: `/api/users/${u.id}/`,
        headers: { ...auth, 'accept-language': 'en' },
        payload: { profile: { ...SEED_PROFILE, occupation: 601 } }
      })
    )
    const deleting = publishEvent(app, 'directory.occupation.deleted', { occupation_id: 601, version: 2 })
    const results = await Promise.all(setting)
    await deleting
    allowed(t, results, [200, 400])
    for (const r of results.filter((r) => r.statusCode === 400))
      t.same(r.json(), { profile: { occupation: ['Invalid pk "601" - object does not exist.'] } })
    await eventually(
      async () => (await sql('select deleted from occupation_replica where id = 601'))[0]?.deleted === true,
      { timeoutMs: 30000 }
    )
    t.same(
      await sql('select user_id from profile where occupation_id = 601'),
      [],
      'no profile holds the deleted occupation'
    )
  })

  t.test('one user changing its own password many times at once', async (t) => {
    const user = await register(app)
    const own = bearer((await login(app, user.username, 'password1')).access)
    const results = await Promise.all(
      Array.from({ length: PARALLEL / 2 }, (_, i) =>
        app.inject({
          method: 'PATCH',
          url: `/api/users/${user.id}/`,
          headers: { ...own, 'accept-language': 'en' },
          payload: { old_password: 'password1', password: `new-password-${i}` }
        })
      )
    )
    allowed(t, results, [200, 400, 409])
    t.equal(
      statuses(results)[200],
      1,
      'one change checked against the password it replaced; the others were checked against a stale one'
    )
    for (const r of results.filter((r) => r.statusCode === 400))
      t.same(r.json(), { old_password: ['Your old password was entered incorrectly.'] })
    const winner = results.findIndex((r) => r.statusCode === 200)
    await login(app, user.username, `new-password-${winner}`)
  })

  t.test('a member removed many times at once', async (t) => {
    await publishEvent(app, 'directory.group.created', {
      group_id: 503,
      version: 1,
      name: 'g503',
      location: 'l',
      contact_phone: '18888888881'
    })
    await eventually(async () => (await sql('select 1 from group_replica where id = 503')).length === 1, {
      timeoutMs: 30000
    })
    const user = await register(app)
    t.equal(
      (
        await app.inject({
          method: 'POST',
          url: '/api/groups/503/users/',
          headers: auth,
          payload: { users: [user.id] }
        })
      ).statusCode,
      200
    )
    const results = await Promise.all(
      Array.from({ length: PARALLEL }, () =>
        app.inject({ method: 'DELETE', url: `/api/groups/503/users/${user.id}/`, headers: auth })
      )
    )
    t.same(statuses(results), { 200: 1, 404: PARALLEL - 1 })
    t.equal(await events('identity.membership.removed', `(payload->'data'->>'group_id')::int = 503`), 1)
  })

  t.test('one session logged out many times at once', async (t) => {
    const user = await register(app)
    const tokens = await login(app, user.username, 'password1')
    const { sid } = JSON.parse(Buffer.from(tokens.access.split('.')[1], 'base64url').toString())
    const results = await Promise.all(
      Array.from({ length: PARALLEL }, (_, i) =>
        app.inject({ method: i % 2 ? 'GET' : 'POST', url: '/api/auth/logout/', headers: bearer(tokens.access) })
      )
    )
    t.same(statuses(results), { 200: 1, 401: PARALLEL - 1 }, 'the session ends once; the others find it ended')
    for (const r of results)
      if (r.statusCode === 401)
        t.same(r.json(), { detail: 'Given token not valid for any token type', code: 'token_not_valid' })
    t.equal(
      await events('identity.session.logout', `payload->'data'->>'session_id' = ?`, [sid]),
      1,
      'one logout event (one log row), not one per request'
    )
  })
})
