import t from 'tap'
import type { EntityManager } from '@mikro-orm/postgresql'
import { DiscardPolicy } from '@nats-io/jetstream'
import { STREAMS, type EventEnvelope } from '@roster/contracts'
import { transactional } from '../src/index.js'
import { isolate, eventually } from '../src/testing/index.js'
import { kitApp, rows, streamEvents, streamName } from './kit-app.js'

/** The transactional outbox against the real PostgreSQL and JetStream. */
t.test('the outbox', async (t) => {
  const iso = await isolate(t)
  const app = await kitApp(t, iso, { name: 'kitoutbox', produces: ['DIRECTORY'] })
  const fork = () => app.orm.em.fork() as EntityManager
  const directory = streamName(app, 'DIRECTORY')
  const groupIdOf = (e: EventEnvelope) => (e.data as { group_id: number }).group_id
  const groupIds = async () => (await streamEvents(app.nats.jsm, directory)).map(groupIdOf)
  const outboxRow = async (eventId: string) => {
    const found = await rows<{ published_at: Date | null }>(
      app,
      'select published_at from outbox_event where event_id = ?',
      [eventId]
    )
    return found[0]
  }

  t.test('a commit publishes its events, a rollback none', async (t) => {
    const rolledBack = transactional(fork(), async (em) => {
      await app.outbox.emit(em, 'directory.group.deleted', { group_id: 1, version: 1 })
      throw new Error('roll back')
    })
    await t.rejects(rolledBack, /roll back/)
    const marker = await transactional(fork(), (em) =>
      app.outbox.emit(em, 'directory.group.deleted', { group_id: 2, version: 1 })
    )
    await app.outbox.settled([marker])
    t.same(await groupIds(), [2], 'the committed event is on the stream, the rolled-back one is not')
    const left = await rows(app, `select 1 from outbox_event where payload -> 'data' ->> 'group_id' = '1'`)
    t.equal(left.length, 0, 'the rolled-back row is not in the table for the relay to find')
    await eventually(async () => (await outboxRow(marker))?.published_at)
  })

  t.test('the events of one transaction go out in their order, with their ids as message ids', async (t) => {
    const before = (await groupIds()).length
    const ids = await transactional(fork(), async (em) => {
      const out: string[] = []
      for (let group = 10; group < 20; group++) {
        out.push(await app.outbox.emit(em, 'directory.group.deleted', { group_id: group, version: 1 }))
      }
      return out
    })
    await app.outbox.settled(ids)
    const events = (await streamEvents(app.nats.jsm, directory)).slice(before)
    t.same(events.map(groupIdOf), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    t.same(
      events.map((e) => e.id),
      ids
    )
    for (const id of ids) await eventually(async () => (await outboxRow(id))?.published_at)
    t.equal(await app.outbox.relayOnce(), 0, 'marked as sent: nothing is left for the relay')
  })

  t.test('an event whose publishing failed is published by the relay, once', async (t) => {
    // The IDENTITY stream is made here to take one message and refuse more, until it is widened.
    const identity = streamName(app, 'IDENTITY')
    await app.nats.jsm.streams.add({
      name: identity,
      subjects: STREAMS.IDENTITY.subjects.map((s) => app.nats.names.subject(s)),
      max_msgs: 1,
      discard: DiscardPolicy.New
    })
    const emit = (groupId: number) =>
      transactional(fork(), (em) =>
        app.outbox.emit(em, 'identity.membership.added', { group_id: groupId, user_id: 1, actor: null })
      )
    const first = await emit(1)
    await app.outbox.settled([first])
    const refused = await emit(2)
    await app.outbox.settled([refused])
    t.equal((await app.nats.jsm.streams.info(identity)).state.messages, 1, 'JetStream refused the second event')
    t.equal((await outboxRow(refused))?.published_at, null, 'its row is left unpublished')

    await app.nats.jsm.streams.update(identity, { max_msgs: -1 })
    app.outbox.kick()
    await eventually(async () => (await outboxRow(refused))?.published_at)
    const events = await streamEvents(app.nats.jsm, identity)
    t.same(
      events.map((e) => e.id),
      [first, refused],
      'the relay published it, and nothing twice'
    )
  })
})
