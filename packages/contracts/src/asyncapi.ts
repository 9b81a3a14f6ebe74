import { EVENTS, STREAMS, streamOfSubject, type EventData, type EventSubject } from './events.js'

/**
 * A realistic payload of every event (the ids, names and times of the seed document's examples), checked
 * against the event types by the compiler; the AsyncAPI document shows them as each message's example.
 */
export const EVENT_EXAMPLES: { [S in EventSubject]: EventData<S> } = {
  'directory.group.created': {
    group_id: 7,
    version: 1,
    name: '心内科',
    location: '门诊楼三层',
    contact_phone: '010-88888888'
  },
  'directory.group.updated': {
    group_id: 7,
    version: 2,
    name: '心血管内科',
    location: '门诊楼三层',
    contact_phone: null
  },
  'directory.group.deleted': { group_id: 7, version: 3 },
  'directory.occupation.created': { occupation_id: 41, version: 1, name: '康复治疗师' },
  'directory.occupation.updated': { occupation_id: 34, version: 2, name: '助产士' },
  'directory.occupation.deleted': { occupation_id: 41, version: 2 },
  'identity.user.created': {
    user_id: 12,
    username: 'zhangsan',
    is_staff: false,
    is_active: true,
    version: 1,
    actor: null
  },
  'identity.user.updated': {
    user_id: 12,
    username: 'zhangsan',
    is_staff: false,
    is_active: false,
    version: 2,
    actor: 1
  },
  'identity.user.deleted': { user_id: 12, username: 'zhangsan', actor: 1 },
  'identity.session.login': {
    session_id: '3f2c7e1a9b8d4c6e8f0a1b2c3d4e5f60',
    user_id: 12,
    username: 'zhangsan',
    ip: '10.1.2.3',
    user_agent: 'Mozilla/5.0'
  },
  'identity.session.logout': {
    session_id: '3f2c7e1a9b8d4c6e8f0a1b2c3d4e5f60',
    user_id: 12,
    operator: 12,
    ip: '10.1.2.3',
    user_agent: 'Mozilla/5.0'
  },
  'identity.session.login_failed': {
    user_id: null,
    username: 'zhangsna',
    reason: 'bad_credentials',
    ip: '10.1.2.3',
    user_agent: 'Mozilla/5.0'
  },
  'identity.membership.added': { group_id: 7, user_id: 12, actor: 1 },
  'identity.membership.removed': { group_id: 7, user_id: 12, actor: 1 }
}

const SUMMARIES: Record<EventSubject, string> = {
  'directory.group.created': 'A group was created (群组创建)',
  'directory.group.updated': 'A group or its profile changed (群组修改)',
  'directory.group.deleted': 'A group was deleted, with its memberships (群组删除)',
  'directory.occupation.created': 'An occupation was created (职业创建)',
  'directory.occupation.updated': 'An occupation was renamed (职业修改)',
  'directory.occupation.deleted': 'An occupation was deleted (职业删除)',
  'identity.user.created': 'A user registered or was created (用户注册)',
  'identity.user.updated': 'A user’s username, is_staff or is_active changed (用户修改)',
  'identity.user.deleted': 'A user was deleted (用户删除)',
  'identity.session.login': 'A user logged in (用户登录)',
  'identity.session.logout': 'A session ended by logout (用户登出)',
  'identity.session.login_failed': 'A login was refused (登录失败)',
  'identity.membership.added': 'A user joined a group (添加群组成员)',
  'identity.membership.removed': 'A user left a group (移除群组成员)'
}

/** `identity.session.login_failed` → `identitySessionLoginFailed`: ids of channels, messages and operations. */
function camel(subject: string): string {
  return subject.replace(/[._]([a-z])/g, (_m, c: string) => c.toUpperCase())
}

/** A TypeBox schema as plain JSON Schema (TypeBox's symbols dropped). */
function plain(schema: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>
}

const DESCRIPTION = `Facts that Roster's services publish on **NATS JetStream**, one way: directory → identity → audit.
Other teams may consume the \`DIRECTORY\` and \`IDENTITY\` streams with the rules below.

**Streams.** \`DIRECTORY\` holds the subjects \`directory.>\`, \`IDENTITY\` holds \`identity.>\` (file storage, limits
retention). A deployment may prefix stream, subject and consumer names with \`NATS_PREFIX\` and \`_\`/\`.\` (empty in
production); the names below are unprefixed.

**Envelope.** Every message body is JSON: \`{"id": uuid, "subject": the subject, "occurred_at": RFC 3339 time,
"data": the payload of that subject}\`.

**De-duplication (\`msgID\`).** A producer writes each event to an outbox table in the same transaction as the
change, publishes it right after the commit with the event id as the JetStream \`msgID\` (header \`Nats-Msg-Id\`),
and a relay publishes again whatever was not acknowledged (NATS down, a crash). The streams drop a copy of a known
\`msgID\` within their 10-minute duplicate window; a consumer must still be idempotent on \`id\` (record it in the
same transaction as the effect), since a copy can arrive after the window.

**Ordering.** Within one stream, messages are delivered in the order JetStream stored them, which for one producer
process is commit order. Across processes, replicas or relays the order is not guaranteed: facts about the same
entity carry a \`version\` that increases with every change (groups, occupations, users); apply one only when its
version is newer than the one you hold and keep tombstones of deletions, so an older fact arriving late changes
nothing.

**Durable consumers.** Consume with a durable pull consumer named \`<your-service>-<stream>\` in lower case
(Roster's own: \`identity-directory\` on \`DIRECTORY\`, \`audit-identity\` on \`IDENTITY\`), shared by all replicas of
your service, with \`deliver_policy: all\`, \`ack_policy: explicit\`, \`ack_wait\` 30 s and a bounded
\`max_deliver\` (Roster's is 5): acknowledge after your effect has committed; park an event that keeps failing (or
that does not match these schemas) instead of blocking the stream.`

/**
 * The AsyncAPI 3.0 document of Roster's events, generated from the same contracts the services publish and
 * validate with (`EVENTS`, `STREAMS`, the envelope), with an example of every payload. The gateway serves it
 * at `/docs/asyncapi.json`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- an AsyncAPI document is plain JSON of many shapes
export function asyncApiDocument(options: { version?: string; server?: string } = {}): Record<string, any> {
  const channels: Record<string, unknown> = {}
  const operations: Record<string, unknown> = {}
  const messages: Record<string, unknown> = {}
  const schemas: Record<string, unknown> = {}
  for (const subject of Object.keys(EVENTS) as EventSubject[]) {
    const id = camel(subject)
    const stream = STREAMS[streamOfSubject(subject)].name
    const payloadName = `${id[0]!.toUpperCase()}${id.slice(1)}Data`
    schemas[payloadName] = plain(EVENTS[subject])
    const example = EVENT_EXAMPLES[subject]
    messages[id] = {
      name: subject,
      title: subject,
      summary: SUMMARIES[subject],
      contentType: 'application/json',
      headers: {
        type: 'object',
        required: ['Nats-Msg-Id'],
        properties: {
          'Nats-Msg-Id': {
            type: 'string',
            format: 'uuid',
            description: 'the event id (`msgID`): JetStream drops a copy within its duplicate window'
          }
        }
      },
      payload: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'subject', 'occurred_at', 'data'],
        properties: {
          id: {
            type: 'string',
            format: 'uuid',
            description: 'event id; also the `msgID`; consumers de-duplicate on it'
          },
          subject: { type: 'string', const: subject },
          occurred_at: {
            type: 'string',
            format: 'date-time',
            description: 'when the change committed, in the service time zone'
          },
          data: { $ref: `#/components/schemas/${payloadName}` }
        }
      },
      examples: [
        {
          name: id,
          summary: SUMMARIES[subject],
          headers: { 'Nats-Msg-Id': '0b6f8a4e-2c1d-4f3a-9e5b-7d8c9a0b1c2d' },
          payload: {
            id: '0b6f8a4e-2c1d-4f3a-9e5b-7d8c9a0b1c2d',
            subject,
            occurred_at: '2019-12-14T00:08:16.967+08:00',
            data: example
          }
        }
      ]
    }
    channels[id] = {
      address: subject,
      title: subject,
      description: `Subject \`${subject}\` of the \`${stream}\` stream.`,
      messages: { [id]: { $ref: `#/components/messages/${id}` } },
      tags: [{ name: stream }]
    }
    operations[`publish${id[0]!.toUpperCase()}${id.slice(1)}`] = {
      action: 'send',
      title: `${SUMMARIES[subject]}`,
      summary: `Published by the ${subject.split('.')[0]} service after the change commits (outbox).`,
      channel: { $ref: `#/channels/${id}` },
      messages: [{ $ref: `#/channels/${id}/messages/${id}` }],
      tags: [{ name: stream }]
    }
  }
  return {
    asyncapi: '3.0.0',
    id: 'urn:roster:events',
    info: {
      title: 'Roster events',
      version: options.version ?? '0.1.0',
      description: DESCRIPTION,
      contact: { name: 'Roster maintainers' },
      license: { name: 'Proprietary' },
      tags: Object.values(STREAMS).map((s) => ({
        name: s.name,
        description: `JetStream stream ${s.name} (subjects ${s.subjects.join(', ')})`
      }))
    },
    defaultContentType: 'application/json',
    servers: {
      nats: {
        host: options.server ?? '127.0.0.1:4222',
        protocol: 'nats',
        description: 'NATS with JetStream (the deployment’s NATS_URL)'
      }
    },
    channels,
    operations,
    components: { messages, schemas }
  }
}
