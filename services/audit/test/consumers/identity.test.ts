import { eventually } from '@roster/service-kit/testing'
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { buildApp } from '../../src/app.js'
import { buildSystem, envelope, get, publish, rowsOfEvent, sql, testConfig } from '../helper.js'

const login = (userId: number, extra: Partial<{ ip: string; user_agent: string }> = {}) => ({
  session_id: randomUUID(),
  user_id: userId,
  username: `u${userId}`,
  ip: '192.0.2.1',
  user_agent: 'consumer-test',
  ...extra
})

t.test('the IDENTITY consumer', async (t) => {
  const sys = await buildSystem(t)
  const { audit, admin } = sys
  let nextUser = 600000 + Math.floor(Math.random() * 50000)

  const parked = async (reason: string) =>
    sql<{ subject: string; payload: string; reason: string; consumer: string }>(
      audit,
      'select consumer, subject, payload, reason from parked_event where reason = ? order by id',
      [reason]
    )

  t.test('the same event twice, with a msgID, is stored once and logged once', async (t) => {
    const event = envelope('identity.session.login', login(++nextUser))
    t.equal((await publish(audit, 'identity.session.login', event, event.id)).duplicate, false)
    t.equal(
      (await publish(audit, 'identity.session.login', event, event.id)).duplicate,
      true,
      'JetStream drops the copy'
    )
    await eventually(async () => (await rowsOfEvent(audit, event.id)) === 1)
    const marker = envelope('identity.session.login', login(nextUser))
    await publish(audit, 'identity.session.login', marker, marker.id)
    await eventually(async () => (await rowsOfEvent(audit, marker.id)) === 1)
    t.equal(await rowsOfEvent(audit, event.id), 1)
  })

  t.test('the same event twice without a msgID reaches the consumer twice and is logged once', async (t) => {
    const event = envelope('identity.session.logout', { ...login(++nextUser), operator: nextUser })
    const skippedBefore = audit.consumers.stats()['audit-identity'].skipped
    await publish(audit, 'identity.session.logout', event)
    await publish(audit, 'identity.session.logout', event)
    await eventually(() => audit.consumers.stats()['audit-identity'].skipped > skippedBefore)
    t.equal(await rowsOfEvent(audit, event.id), 1)
    const rows = await sql(audit, 'select operation, operator_id from user_log where event_id = ?', [event.id])
    t.same(rows, [{ operation: 1, operator_id: nextUser }])
  })

  t.test('events out of order: each is logged once, listed by when it happened', async (t) => {
    const userId = ++nextUser
    const session = login(userId)
    const loginAt = new Date(Date.now() - 60_000)
    const logoutAt = new Date(Date.now() - 30_000)
    const logout = envelope('identity.session.logout', { ...session, operator: userId }, logoutAt)
    const loginEvent = envelope('identity.session.login', session, loginAt)
    // The logout is published before the login it ends.
    await publish(audit, 'identity.session.logout', logout, logout.id)
    await publish(audit, 'identity.session.login', loginEvent, loginEvent.id)
    await publish(audit, 'identity.session.login', loginEvent)
    await eventually(
      async () => (await rowsOfEvent(audit, loginEvent.id)) === 1 && (await rowsOfEvent(audit, logout.id)) === 1
    )
    const res = await get(audit, `/api/user-logs/?user=${userId}`, admin.access)
    t.same(
      (res.json() as any[]).map((l) => [l.operation, Date.parse(l.operate_time)]),
      [
        [1, logoutAt.getTime()],
        [0, loginAt.getTime()]
      ]
    )
    t.equal(res.headers['x-total-count'], '2')
  })

  t.test('a user deleted before its created / updated events arrive stays deleted', async (t) => {
    const userId = ++nextUser
    const fact = { user_id: userId, username: `u${userId}`, is_staff: false, is_active: true, version: 1, actor: null }
    await publish(
      audit,
      'identity.user.deleted',
      envelope('identity.user.deleted', { user_id: userId, username: `u${userId}`, actor: null })
    )
    await publish(audit, 'identity.user.created', envelope('identity.user.created', fact))
    const last = envelope('identity.user.updated', { ...fact, version: 2 })
    await publish(audit, 'identity.user.updated', last)
    await eventually(
      async () => (await sql(audit, 'select 1 from processed_event where event_id = ?', [last.id])).length === 1
    )
    const [row] = await sql(audit, 'select deleted_at is not null as deleted from known_user where id = ?', [userId])
    t.same(row, { deleted: true })
    const res = await audit.inject({
      method: 'POST',
      url: '/api/black-list/',
      headers: { authorization: `Bearer ${admin.access}` },
      payload: { patient: userId, reason: 'late event' }
    })
    t.equal(res.statusCode, 400, 'not a user any more')
  })

  t.test('created, updated and deleted users', async (t) => {
    const userId = ++nextUser
    const fact = { user_id: userId, username: `u${userId}`, is_staff: false, is_active: true, version: 1, actor: null }
    await publish(audit, 'identity.user.created', envelope('identity.user.created', fact))
    await publish(
      audit,
      'identity.user.updated',
      envelope('identity.user.updated', { ...fact, is_active: false, version: 2 })
    )
    await eventually(
      async () => (await sql(audit, 'select 1 from known_user where id = ? and not is_active', [userId])).length === 1
    )
    await publish(audit, 'identity.session.login', envelope('identity.session.login', login(userId)))
    await publish(
      audit,
      'identity.user.deleted',
      envelope('identity.user.deleted', { user_id: userId, username: fact.username, actor: admin.id })
    )
    await eventually(
      async () =>
        (await sql(audit, 'select 1 from known_user where id = ? and deleted_at is not null', [userId])).length === 1
    )
    const history = await get(audit, `/api/users/${userId}/user-logs/`, admin.access)
    t.equal(history.statusCode, 200)
    t.equal(history.json().length, 1, 'the log history of a deleted user stays')
  })

  t.test('user facts out of order: the newest version wins whatever arrives last', async (t) => {
    const userId = ++nextUser
    const fact = { user_id: userId, username: `u${userId}`, is_staff: false, is_active: true, version: 1, actor: null }
    const newest = envelope('identity.user.updated', { ...fact, is_staff: true, is_active: false, version: 3 })
    const older = envelope('identity.user.updated', { ...fact, is_active: false, version: 2 })
    const created = envelope('identity.user.created', fact)
    await publish(audit, 'identity.user.updated', newest)
    await publish(audit, 'identity.user.updated', older)
    await publish(audit, 'identity.user.created', created)
    const ids = [newest.id, older.id, created.id]
    await eventually(
      async () => (await sql(audit, 'select 1 from processed_event where event_id in (?, ?, ?)', ids)).length === 3
    )
    const [row] = await sql(audit, 'select is_staff, is_active, version from known_user where id = ?', [userId])
    t.same(row, { is_staff: true, is_active: false, version: 3 })
  })

  t.test('the unique event id is a second guard when the bookkeeping is lost', async (t) => {
    const userId = ++nextUser
    const event = envelope('identity.session.login', login(userId))
    await publish(audit, 'identity.session.login', event, event.id)
    await eventually(async () => (await rowsOfEvent(audit, event.id)) === 1)
    const total = async () => (await get(audit, '/api/user-logs/?limit=1', admin.access)).headers['x-total-count']
    const before = await total()
    // As if a renamed durable replayed the stream: the consumer has no record of the event.
    await sql(audit, 'delete from processed_event where event_id = ?', [event.id])
    await publish(audit, 'identity.session.login', event)
    await eventually(
      async () => (await sql(audit, 'select 1 from processed_event where event_id = ?', [event.id])).length === 1
    )
    t.equal(await rowsOfEvent(audit, event.id), 1)
    t.equal(await total(), before, 'the total did not move either')
  })

  t.test('poison messages are parked and the stream keeps flowing', async (t) => {
    const userId = ++nextUser
    await publish(audit, 'identity.session.login', '{"id": "not json')
    const wrong = envelope('identity.session.login', login(userId))
    delete (wrong.data as any).user_id
    await publish(audit, 'identity.session.login', wrong)
    const badEnvelope = { ...envelope('identity.session.login', login(userId)), id: 'not-a-uuid' }
    await publish(audit, 'identity.session.login', badEnvelope)
    await publish(audit, 'identity.session.unheard_of', envelope('identity.session.login', login(userId)))
    const good = envelope('identity.session.login', login(userId, { user_agent: 'after the poison' }))
    await publish(audit, 'identity.session.login', good, good.id)

    await eventually(async () => (await rowsOfEvent(audit, good.id)) === 1)
    const notJson = await eventually(async () => {
      const rows = await parked('payload is not JSON')
      return rows.length === 1 ? rows : null
    })
    t.match(notJson[0], { consumer: 'audit-identity', subject: 'identity.session.login', payload: '{"id": "not json' })
    const contract = await eventually(async () => {
      const rows = await parked('payload does not match the contract')
      return rows.length === 2 ? rows : null
    })
    // The consumer handles several events at once: the parked rows may come in either order.
    t.same(contract.map((r) => JSON.parse(r.payload).id).sort(), [wrong.id, 'not-a-uuid'].sort())
    t.equal((await parked('unknown subject')).length, 1)
    t.equal(await rowsOfEvent(audit, wrong.id), 0, 'nothing was written for them')
    t.ok(audit.consumers.stats()['audit-identity'].parked >= 4)
  })

  t.test('a NUL in a text field (valid JSON, not storable in PostgreSQL) is dropped, not parked', async (t) => {
    const event = envelope('identity.session.login', login(++nextUser, { user_agent: 'agent\u0000with nul' }))
    await publish(audit, 'identity.session.login', event, event.id)
    await eventually(async () => (await rowsOfEvent(audit, event.id)) === 1)
    const [row] = await sql(audit, 'select user_agent from user_log where event_id = ?', [event.id])
    t.equal(row.user_agent, 'agentwith nul')
  })

  t.test('events published while audit is down are logged once it is back', async (t) => {
    const config = testConfig(sys.iso, {
      IDENTITY_URL: sys.identityUrl,
      IDENTITY_INTERNAL_URL: sys.identityInternalUrl
    })
    await audit.close()
    const userId = ++nextUser
    const events = Array.from({ length: 20 }, (_, i) =>
      envelope('identity.session.login', login(userId), new Date(Date.now() - 1000 * (20 - i)))
    )
    for (const event of events) await publish(sys.identity, 'identity.session.login', event, event.id)
    const again = await buildApp(config)
    t.after(() => again.close())
    await again.ready()
    await eventually(async () => {
      const [row] = await sql<{ n: string }>(again, 'select count(*) as n from user_log where user_id = ?', [userId])
      return Number(row.n) === events.length
    })
    const res = await get(again, `/api/user-logs/?user=${userId}&limit=5`, admin.access)
    t.equal(res.headers['x-total-count'], String(events.length))
    t.equal(Date.parse(res.json()[0].operate_time), Date.parse(events[19].occurred_at), 'newest first')
  })
})
