import { internalPath } from './routes.js'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { OrNull as Nullable } from './common.js'

/**
 * Every cross-service fact travels on NATS JetStream as one of these events. Subjects are named here
 * once; services prefix them with NATS_PREFIX (empty in production) so tests can run in isolation.
 * Facts flow one way: directory → identity → audit.
 */
export const STREAMS = {
  DIRECTORY: { name: 'DIRECTORY', subjects: ['directory.>'] },
  IDENTITY: { name: 'IDENTITY', subjects: ['identity.>'] }
} as const
export type StreamKey = keyof typeof STREAMS

const clientFields = {
  ip: Type.String({ description: 'client address as the gateway saw it' }),
  user_agent: Type.String()
}

const UserFact = Type.Object({
  user_id: Type.Integer(),
  username: Type.String(),
  is_staff: Type.Boolean(),
  is_active: Type.Boolean(),
  version: Type.Integer({ description: 'increases with every change of the user; replicas ignore older versions' }),
  actor: Nullable(Type.Integer())
})
const GroupFact = Type.Object({
  group_id: Type.Integer(),
  version: Type.Integer({ description: 'increases with every change; replicas ignore older versions' }),
  name: Type.String(),
  location: Nullable(Type.String()),
  contact_phone: Nullable(Type.String())
})
const OccupationFact = Type.Object({
  occupation_id: Type.Integer(),
  version: Type.Integer(),
  name: Type.String()
})

export const EVENTS = {
  'directory.group.created': GroupFact,
  'directory.group.updated': GroupFact,
  'directory.group.deleted': Type.Object({ group_id: Type.Integer(), version: Type.Integer() }),
  'directory.occupation.created': OccupationFact,
  'directory.occupation.updated': OccupationFact,
  'directory.occupation.deleted': Type.Object({ occupation_id: Type.Integer(), version: Type.Integer() }),

  'identity.user.created': UserFact,
  'identity.user.updated': UserFact,
  'identity.user.deleted': Type.Object({
    user_id: Type.Integer(),
    username: Type.String(),
    actor: Nullable(Type.Integer())
  }),
  'identity.session.login': Type.Object({
    session_id: Type.String(),
    user_id: Type.Integer(),
    username: Type.String(),
    ...clientFields
  }),
  'identity.session.logout': Type.Object({
    session_id: Type.String(),
    user_id: Type.Integer(),
    operator: Type.Integer({ description: 'the user who ended the session' }),
    ...clientFields
  }),
  'identity.session.login_failed': Type.Object({
    user_id: Nullable(Type.Integer({ description: 'null when no account has that username' })),
    username: Type.String(),
    reason: Type.Union([Type.Literal('bad_credentials'), Type.Literal('inactive'), Type.Literal('locked_out')]),
    ...clientFields
  }),
  'identity.membership.added': Type.Object({
    group_id: Type.Integer(),
    user_id: Type.Integer(),
    actor: Nullable(Type.Integer())
  }),
  'identity.membership.removed': Type.Object({
    group_id: Type.Integer(),
    user_id: Type.Integer(),
    actor: Nullable(Type.Integer())
  })
} as const satisfies Record<string, TSchema>

export type EventSubject = keyof typeof EVENTS
export type EventData<S extends EventSubject> = Static<(typeof EVENTS)[S]>

/** The body of every message: the payload plus an id that JetStream and consumers de-duplicate on. */
export const EventEnvelopeSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  subject: Type.String(),
  occurred_at: Type.String({ format: 'date-time' }),
  data: Type.Unknown()
})
export interface EventEnvelope<S extends EventSubject = EventSubject> {
  id: string
  subject: S
  occurred_at: string
  data: EventData<S>
}

export function streamOfSubject(subject: EventSubject): StreamKey {
  return subject.startsWith('directory.') ? 'DIRECTORY' : 'IDENTITY'
}

/** The NATS KV bucket of revoked session ids; its entries live as long as a refresh token. */
export const REVOKED_SESSIONS_BUCKET = 'roster_revoked_sessions'

/**
 * Internal HTTP paths (never routed by the gateway) where an owner answers a replica's read-through
 * on a miss, with the same fact an event would carry, or 404.
 */
export const INTERNAL_PATHS = {
  occupation: (id: number) => internalPath('occupationFact').replace(':pk', String(id)),
  group: (id: number) => internalPath('groupFact').replace(':pk', String(id)),
  user: (id: number) => internalPath('userFact').replace(':pk', String(id))
}
