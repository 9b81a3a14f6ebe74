import { Type, type Static } from '@sinclair/typebox'
import { IdSchema, Nullable, PaginationQuerySchema, TimestampSchema, withDescription } from './common.js'

/** The audit service's public representations: user logs (written from identity events) and the patient blacklist. */

export const OPERATION_LOGIN = 0
export const OPERATION_LOGOUT = 1
export const OPERATION_LOGIN_FAILED = 2
export const OPERATIONS = [OPERATION_LOGIN, OPERATION_LOGOUT, OPERATION_LOGIN_FAILED] as const
export type Operation = (typeof OPERATIONS)[number]

const operation = Type.Integer({ enum: [...OPERATIONS], description: '0 login, 1 logout, 2 failed login attempt' })

export const UserLogSchema = Type.Object(
  {
    id: IdSchema,
    user: Nullable(IdSchema),
    ip: Type.String({ description: 'client address as the gateway saw it' }),
    operation,
    operator: Nullable(IdSchema),
    operate_time: TimestampSchema,
    user_agent: Type.String(),
    username: Type.Optional(
      Type.String({ description: 'the username that was tried; only on failed attempts (operation 2)' })
    )
  },
  {
    $id: 'UserLog',
    examples: [
      {
        id: 1,
        user: 1,
        ip: '10.0.0.8',
        operation: 0,
        operator: 1,
        operate_time: '2019-12-14T00:08:16.967+08:00',
        user_agent: 'Mozilla/5.0'
      }
    ],
    description:
      'A login (0), logout (1) or failed login attempt (2). `user` is null for an attempt on a username that does not exist; ' +
      '`operator` is the user who ended the session on a logout, and null on a failed attempt.'
  }
)
export type UserLog = Static<typeof UserLogSchema>

const filterId = Type.Integer({ minimum: 0, maximum: 2147483647 })
// RFC 3339; a `+` in the offset must be sent as `%2B` (a bare `+` in a query string means a space).
const since = Type.String({ format: 'date-time', description: 'only records at or after this time (RFC 3339)' })
const until = Type.String({ format: 'date-time', description: 'only records at or before this time (RFC 3339)' })

const logFilters = {
  operation: Type.Optional(
    withDescription(operation, {
      description:
        '0 login, 1 logout, 2 failed attempts; without it, logins and logouts are listed (never failed attempts)'
    })
  ),
  since: Type.Optional(since),
  until: Type.Optional(until),
  cursor: Type.Optional(
    Type.String({
      maxLength: 64,
      description:
        'opaque position for deep pages: send it empty to start, then follow `Link: rel="next"`; `offset` is ignored with it'
    })
  )
}

export const UserLogListQuerySchema = Type.Composite([
  PaginationQuerySchema,
  Type.Object({
    user: Type.Optional(withDescription(filterId, { description: "only this user's records" })),
    ...logFilters
  })
])
export type UserLogListQuery = Static<typeof UserLogListQuerySchema>

export const UserLogsOfUserQuerySchema = Type.Composite([PaginationQuerySchema, Type.Object(logFilters)])
export type UserLogsOfUserQuery = Static<typeof UserLogsOfUserQuerySchema>

export const BLACKLIST_REASON_MAX = 64

export const BlackListEntrySchema = Type.Object(
  {
    id: IdSchema,
    patient: IdSchema,
    join_time: TimestampSchema,
    is_delete: Type.Integer({ enum: [0, 1], description: '1 once the entry has been removed (the row stays)' }),
    reason: Type.String(),
    creator: IdSchema
  },
  {
    $id: 'BlackListEntry',
    examples: [
      { id: 1, patient: 1, join_time: '2019-12-14T00:08:16.967+08:00', is_delete: 0, reason: '多次爽约', creator: 1 }
    ]
  }
)
export type BlackListEntry = Static<typeof BlackListEntrySchema>

const reason = Type.String({
  minLength: 1,
  maxLength: BLACKLIST_REASON_MAX,
  description: 'why the patient is listed (1–64 characters)'
})

export const BlackListCreateBodySchema = Type.Object(
  {
    patient: Type.Integer({ description: 'id of an existing user who is not already actively listed' }),
    reason
  },
  { title: 'BlackListCreate', examples: [{ patient: 1, reason: '多次爽约' }] }
)
export type BlackListCreateBody = Static<typeof BlackListCreateBodySchema>

export const BlackListUpdateBodySchema = Type.Object(
  { reason },
  {
    title: 'BlackListUpdate',
    description: 'only `reason` changes; other fields sent are ignored',
    examples: [{ reason: '多次爽约' }]
  }
)
export type BlackListUpdateBody = Static<typeof BlackListUpdateBodySchema>

export const BlackListPatchBodySchema = Type.Object(
  { reason: Type.Optional(reason) },
  {
    title: 'BlackListPatch',
    description: 'only `reason` changes; other fields sent are ignored',
    examples: [{ reason: '多次爽约' }]
  }
)
export type BlackListPatchBody = Static<typeof BlackListPatchBodySchema>

export const BlackListQuerySchema = Type.Composite([
  PaginationQuerySchema,
  Type.Object({
    patient: Type.Optional(
      withDescription(filterId, { description: "only this patient's entries: whether the patient is listed" })
    ),
    include_deleted: Type.Optional(Type.Boolean({ default: false, description: 'list removed entries too' }))
  })
])
export type BlackListQuery = Static<typeof BlackListQuerySchema>
