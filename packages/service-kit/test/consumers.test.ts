import t from 'tap'
import { randomUUID } from 'node:crypto'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { EventEnvelope } from '@roster/contracts'
import { sql, type ServiceApp } from '../src/index.js'
import { eventually, isolate } from '../src/testing/index.js'
import { kitApp, rows } from './kit-app.js'

const MAX_DELIVER = 3

/**
 * The kit's JetStream consumers on a small service whose handler records `directory.group.deleted`
 * events in a table, in the handler's transaction. Absence is shown by a marker event published after:
 * the consumer takes messages one at a time in stream order, so once the marker is in, every message
 * before it has had its first delivery. A redelivery comes later, so its outcome is waited for itself.
 */
t.test('consumers', async (t) => {
  const iso = await isolate(t)
  // Group ids whose handling fails: for the first delivery only, or always.
  const failOnce = new Set<number>()
  const failAlways = new Set<number>()
  const deliveries = new Map<number, number>()
  const app: ServiceApp = await kitApp(
    t,
    iso,
    {
      name: 'kitconsumers',
      produces: ['DIRECTORY'],
      consumers: [
        {
          durable: 'kit-test',
          stream: 'DIRECTORY',
          handlers: {
            'directory.group.deleted': async (data, event, em) => {
              const group = data.group_id
              deliveries.set(group, (deliveries.get(group) ?? 0) + 1)
              await sql(em, 'insert into handled (event_id, group_id) values (?, ?)', [event.id, group])
              if (failAlways.has(group)) throw new Error(`group ${group} cannot be handled`)
              if (failOnce.delete(group)) throw new Error('a passing failure')
            }
          }
        }
      ]
    },
    { CONSUMER_MAX_DELIVER: MAX_DELIVER }
  )
  const em = app.orm.em.fork() as EntityManager
  await sql(em, 'create table handled (event_id uuid not null, group_id integer not null)')

  const envelope = (groupId: number, id = randomUUID()): EventEnvelope => ({
    id,
    subject: 'directory.group.deleted',
    occurred_at: new Date().toISOString(),
    data: { group_id: groupId, version: 1 }
  })
  /** Publishes raw bytes on a contract subject; each publish is its own message (a fresh msgID). */
  const publish = (body: unknown, subject = 'directory.group.deleted') =>
    app.nats.js.publish(app.nats.names.subject(subject), typeof body === 'string' ? body : JSON.stringify(body), {
      msgID: randomUUID()
    })
  const handledRows = (groupId: number) =>
    rows<{ event_id: string }>(app, 'select event_id from handled where group_id = ?', [groupId])
  let markers = 1000
  /** Publishes a fresh marker and waits until it has been handled. */
  const marker = async () => {
    const groupId = ++markers
    await publish(envelope(groupId))
    await eventually(async () => (await handledRows(groupId)).length === 1, { timeoutMs: 15_000 })
  }

  t.test('an event delivered twice has one effect', async (t) => {
    const event = envelope(1)
    await publish(event)
    await publish(event)
    await marker()
    t.same(await handledRows(1), [{ event_id: event.id }])
    const processed = await rows(app, 'select 1 from processed_event where consumer = ? and event_id = ?', [
      'kit-test',
      event.id
    ])
    t.equal(processed.length, 1)
    t.ok(app.consumers.stats()['kit-test'].skipped >= 1, 'the copy was skipped')
  })

  t.test('a failed handling is rolled back and delivered again', async (t) => {
    failOnce.add(2)
    await publish(envelope(2))
    await eventually(async () => (await handledRows(2)).length > 0, { timeoutMs: 15_000 })
    await marker()
    t.equal(deliveries.get(2), 2)
    t.equal((await handledRows(2)).length, 1, 'the first attempt left nothing behind')
  })

  t.test('poisonous messages are parked and do not block the stream', async (t) => {
    failAlways.add(3)
    const unhandled = envelope(3)
    await publish('{not json')
    await publish({ ...envelope(4), data: { group_id: 'four' } })
    await publish(unhandled)
    // The marker gets through while the third message is still being retried: nothing blocks the stream.
    await marker()
    const parkedCount = async () => (await rows(app, 'select 1 from parked_event')).length
    await eventually(async () => (await parkedCount()) === 3, { timeoutMs: 15_000 })
    const parked = await rows<{ reason: string; deliveries: number; payload: string }>(
      app,
      'select reason, deliveries, payload from parked_event where consumer = ? order by id',
      ['kit-test']
    )
    t.match(parked, [
      { reason: 'payload is not JSON', deliveries: 1, payload: '{not json' },
      { reason: 'payload does not match the contract', deliveries: 1 },
      { reason: 'group 3 cannot be handled', deliveries: MAX_DELIVER }
    ])
    t.equal(deliveries.get(3), MAX_DELIVER, 'retried up to the limit, then parked')
    t.equal((await handledRows(3)).length, 0)
    t.equal((await handledRows(4)).length, 0)
    t.equal(app.consumers.stats()['kit-test'].parked, 3)
  })
})
