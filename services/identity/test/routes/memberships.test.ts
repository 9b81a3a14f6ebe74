import t from 'tap'
import { eventually } from '@roster/service-kit/testing'
import { build, ADMIN, login, bearer, register, publishEvent, SEED_PROFILE } from '../helper.js'

const group = (id: number, version: number, name = `g${id}`) => ({
  group_id: id,
  version,
  name,
  location: 'loc',
  contact_phone: '18888888881'
})

t.test('replica of the directory and memberships', async (t) => {
  const app = await build(t)
  const admin = await login(app, ADMIN.username, ADMIN.password)
  const auth = bearer(admin.access)
  const a = await register(app)
  const b = await register(app)
  const userSession = await login(app, a.username, 'password1')

  const row = async (sql: string, params: unknown[] = []) =>
    (await app.orm.em.fork().getConnection().execute(sql, params))[0]
  // The directory consumer takes events one at a time in stream order: once a later marker event has been
  // recorded as processed, every event published before it has been handled (applied or skipped) too.
  let markers = 0
  const afterMarker = async () => {
    const id = await publishEvent(app, 'directory.occupation.created', {
      occupation_id: 9000 + ++markers,
      version: 1,
      name: 'marker'
    })
    await eventually(
      async () => (await row('select count(*)::int as n from processed_event where event_id = ?', [id])).n === 1,
      {
        timeoutMs: 30_000
      }
    )
  }

  t.test('events applied once, in version order, whatever the delivery', async (t) => {
    const id = await publishEvent(app, 'directory.group.created', group(10, 1, 'first'))
    await publishEvent(app, 'directory.group.created', group(10, 1, 'first'), id)
    await publishEvent(app, 'directory.group.updated', group(10, 3, 'third'))
    await publishEvent(app, 'directory.group.updated', group(10, 2, 'second'))
    await eventually(async () => (await row('select name from group_replica where id = 10'))?.name === 'third')
    await publishEvent(app, 'directory.occupation.updated', { occupation_id: 5, version: 2, name: 'nurse' })
    await publishEvent(app, 'directory.occupation.created', { occupation_id: 5, version: 1, name: 'old' })
    await eventually(async () => (await row('select name from occupation_replica where id = 5'))?.name === 'nurse')
    await afterMarker()
    t.equal((await row('select name from group_replica where id = 10')).name, 'third')
    t.equal((await row('select name from occupation_replica where id = 5')).name, 'nurse')
    const handled = await row(`select count(*)::int as n from processed_event where consumer = 'identity-directory'`)
    t.equal(handled.n, 6, 'the duplicate was handled once (five events and the marker)')
  })

  t.test('members: add, list both ways, remove', async (t) => {
    const url = '/api/groups/10/users/'
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 401)
    t.equal((await app.inject({ method: 'GET', url, headers: bearer(userSession.access) })).statusCode, 403)
    const added = await app.inject({ method: 'POST', url, headers: auth, payload: { users: [a.id, b.id, a.id] } })
    t.equal(added.statusCode, 200, added.body)
    t.same(
      added.json().map((u: { id: number }) => u.id),
      [a.id, b.id]
    )
    const again = await app.inject({ method: 'POST', url, headers: auth, payload: { users: [a.id] } })
    t.equal(again.statusCode, 200, 'already a member: no change')
    const unknown = await app.inject({ method: 'POST', url, headers: auth, payload: { users: [a.id, 99999] } })
    t.equal(unknown.statusCode, 400)
    t.same(unknown.json(), { users: ['无效主键 “99999” － 对象不存在。'] })
    const empty = await app.inject({ method: 'POST', url, headers: auth, payload: {} })
    t.same(empty.json(), { users: ['该字段是必填项。'] })
    const noGroup = await app.inject({
      method: 'POST',
      url: '/api/groups/999/users/',
      headers: auth,
      payload: { users: [a.id] }
    })
    t.equal(noGroup.statusCode, 404)

    const members = await app.inject({ method: 'GET', url, headers: auth })
    t.equal(members.headers['x-total-count'], '2')
    t.match(members.json()[0], { id: a.id, username: a.username, profile: null })
    const groups = await app.inject({
      method: 'GET',
      url: `/api/users/${a.id}/groups/`,
      headers: bearer(userSession.access)
    })
    t.equal(groups.statusCode, 200)
    t.same(groups.json(), [{ id: 10, name: 'third', location: 'loc', contact_phone: '18888888881' }])
    t.equal(
      (await app.inject({ method: 'GET', url: `/api/users/${b.id}/groups/`, headers: bearer(userSession.access) }))
        .statusCode,
      403
    )
    t.equal((await app.inject({ method: 'GET', url: '/api/users/99999/groups/', headers: auth })).statusCode, 404)

    const removed = await app.inject({ method: 'DELETE', url: `/api/groups/10/users/${b.id}/`, headers: auth })
    t.equal(removed.statusCode, 200)
    t.equal(
      (await app.inject({ method: 'DELETE', url: `/api/groups/10/users/${b.id}/`, headers: auth })).statusCode,
      404
    )
    const events = await row(`select count(*)::int as n from outbox_event where subject like 'identity.membership.%'`)
    t.equal(events.n, 3, 'two added, one removed')
  })

  t.test('occupation holders and the cascade when it is deleted', async (t) => {
    const holder = await app.inject({
      method: 'POST',
      url: '/api/users/',
      payload: { username: 'nurse1', password: 'password1', profile: { ...SEED_PROFILE, occupation: 5 } }
    })
    t.equal(holder.statusCode, 200, holder.body)
    const list = await app.inject({ method: 'GET', url: '/api/occupations/5/users/', headers: auth })
    t.same(
      list.json().map((u: { id: number }) => u.id),
      [holder.json().id]
    )
    t.equal((await app.inject({ method: 'GET', url: '/api/occupations/6/users/', headers: auth })).statusCode, 404)
    await publishEvent(app, 'directory.occupation.deleted', { occupation_id: 5, version: 3 })
    await eventually(
      async () =>
        (await row('select occupation_id from profile where user_id = ?', [holder.json().id])).occupation_id === null
    )
    await publishEvent(app, 'directory.occupation.updated', { occupation_id: 5, version: 2, name: 'late' })
    await afterMarker()
    t.equal(
      (await row('select deleted from occupation_replica where id = 5')).deleted,
      true,
      'a late update does not resurrect it'
    )
    const reuse = await app.inject({
      method: 'POST',
      url: '/api/users/',
      payload: { username: 'nurse2', password: 'password1', profile: { ...SEED_PROFILE, occupation: 5 } }
    })
    t.equal(reuse.statusCode, 400)
  })

  t.test('a deleted group drops its memberships, never its users', async (t) => {
    await publishEvent(app, 'directory.group.deleted', { group_id: 10, version: 4 })
    await eventually(async () => (await row('select count(*)::int as n from membership where group_id = 10')).n === 0)
    const groups = await app.inject({ method: 'GET', url: `/api/users/${a.id}/groups/`, headers: auth })
    t.same(groups.json(), [])
    t.equal((await app.inject({ method: 'GET', url: `/api/users/${a.id}/`, headers: auth })).statusCode, 200)
    t.equal((await app.inject({ method: 'GET', url: '/api/groups/10/users/', headers: auth })).statusCode, 404)
  })

  t.test('a malformed event is parked and does not block the stream', async (t) => {
    await app.nats.js.publish(app.nats.names.subject('directory.group.created'), 'not json')
    await app.nats.js.publish(
      app.nats.names.subject('directory.group.created'),
      JSON.stringify({
        id: crypto.randomUUID(),
        subject: 'directory.group.created',
        occurred_at: new Date().toISOString(),
        data: { group_id: 'x' }
      })
    )
    await publishEvent(app, 'directory.group.created', group(11, 1, 'after'))
    await eventually(async () => (await row('select name from group_replica where id = 11'))?.name === 'after')
    const parked = await row('select count(*)::int as n from parked_event')
    t.equal(parked.n, 2)
  })
})
