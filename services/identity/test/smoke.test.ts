import t from 'tap'
import { eventually } from '@roster/service-kit/testing'
import { build, ADMIN, login, bearer, SEED_PROFILE } from './helper.js'

t.test('register, login, read self', async (t) => {
  const app = await build(t)
  const res = await app.inject({
    method: 'POST',
    url: '/api/users/',
    payload: {
      username: 'test1',
      password: 'password1',
      email: 'email1@test.com',
      profile: { ...SEED_PROFILE, name: '张三' }
    }
  })
  t.equal(res.statusCode, 200, res.body)
  const user = res.json()
  t.equal(user.profile.name_pinyin, 'zhangsan')
  const tokens = await login(app, 'test1', 'password1')
  const me = await app.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(tokens.access) })
  t.equal(me.statusCode, 200, me.body)
  const admin = await login(app, ADMIN.username, ADMIN.password)
  const list = await app.inject({ method: 'GET', url: '/api/users/?search=zs', headers: bearer(admin.access) })
  t.equal(list.statusCode, 200, list.body)
  t.equal(list.json().length, 1)
  const out = await app.inject({ method: 'GET', url: '/api/auth/logout/', headers: bearer(tokens.access) })
  t.equal(out.statusCode, 200, out.body)
  const again = await app.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(tokens.access) })
  t.equal(again.statusCode, 401, again.body)
})

t.test('a commit that queued events wakes the outbox relay: no polling needed', async (t) => {
  const app = await build(t, { OUTBOX_POLL_MS: 60_000 })
  await app.inject({ method: 'POST', url: '/api/users/', payload: { username: 'woken', password: 'password1' } })
  const published = async () =>
    (
      await app.orm.em
        .fork()
        .getConnection()
        .execute(`select count(*)::int as n from outbox_event where published_at is null`)
    )[0].n === 0
  // Half the poll interval: only the commit's own wake-up can have published it (a slow machine still passes).
  await eventually(published, { timeoutMs: 30_000 })
  t.pass('published before the 60 s poll')
})

t.test(
  'the outbox: published after commit, never after a rollback, and the relay picks up what was missed',
  async (t) => {
    const app = await build(t, { OUTBOX_POLL_MS: 60_000 })
    const { jsm, names } = app.nats
    const stream = names.stream('IDENTITY')
    const messages = async () => (await jsm.streams.info(stream)).state.messages
    const pending = async () =>
      (
        await app.orm.em
          .fork()
          .getConnection()
          .execute(`select count(*)::int as n from outbox_event where published_at is null`)
      )[0].n
    await eventually(async () => (await pending()) === 0)
    const before = await messages()
    const fact = { user_id: 999, username: 'ghost', actor: null }

    await app.orm.em
      .fork()
      .transactional(async (em) => {
        await app.outbox.emit(em as any, 'identity.user.deleted', fact)
        throw new Error('roll back')
      })
      .catch(() => undefined)
    await app.orm.em.fork().transactional((em) => app.outbox.emit(em as any, 'identity.user.deleted', fact))
    await eventually(async () => (await pending()) === 0, { timeoutMs: 30_000 })
    t.equal((await messages()) - before, 1, 'one event: the committed one')

    // A savepoint rolled back inside a committed transaction: its event never goes out.
    await app.orm.em.fork().transactional(async (outer) => {
      await outer
        .transactional(async (inner) => {
          await app.outbox.emit(inner as any, 'identity.user.deleted', { ...fact, username: 'rolled-back' })
          throw new Error('roll back the savepoint')
        })
        .catch(() => undefined)
    })
    // A later marker, committed and published after it: once the marker is the stream's last message,
    // anything the outer commit had sent would be in the stream before it.
    const marker = await app.orm.em
      .fork()
      .transactional((em) => app.outbox.emit(em as any, 'identity.user.deleted', { ...fact, username: 'marker' }))
    const last = async () => {
      const { last_seq } = (await jsm.streams.info(stream)).state
      return (await jsm.streams.getMessage(stream, { seq: last_seq }))?.json<{ id: string }>().id
    }
    await eventually(async () => (await last()) === marker, { timeoutMs: 10_000 })
    t.equal(await app.outbox.relayOnce(), 0, 'nothing of the savepoint is pending')
    t.equal((await messages()) - before, 2, 'and nothing of it was published: the first event, then the marker')

    // A row the committing process never published (a crash between commit and publish) waits for the relay.
    await app.orm.em
      .fork()
      .getConnection()
      .execute(
        `insert into outbox_event (event_id, subject, payload) values (gen_random_uuid(), 'identity.user.deleted', ?)`,
        [JSON.stringify({ occurred_at: new Date().toISOString(), data: fact })]
      )
    t.equal(await pending(), 1)
    t.equal(await app.outbox.relayOnce(), 1, 'the relay publishes it')
    t.equal((await messages()) - before, 3)
    t.equal(await app.outbox.relayOnce(), 0, 'and nothing twice')
  }
)
