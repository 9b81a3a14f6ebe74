import { EntitySchema } from '@mikro-orm/core'

/** One login, logout or failed login attempt, written only by the `IDENTITY` consumer; one row per event. */
export interface UserLogRow {
  id: number
  eventId: string
  user: number | null
  username: string
  ip: string
  operation: number
  operator: number | null
  operateTime: Date
  userAgent: string
}

export const UserLogEntity = new EntitySchema<UserLogRow>({
  name: 'UserLog',
  tableName: 'user_log',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: true },
    eventId: { type: 'uuid' },
    user: { type: 'integer', nullable: true, fieldName: 'user_id' },
    username: { type: 'string', length: 150, default: '' },
    ip: { type: 'text', default: '' },
    operation: { type: 'smallint' },
    operator: { type: 'integer', nullable: true, fieldName: 'operator_id' },
    // Part of the key: the table is partitioned by it (see the migrations).
    operateTime: { type: 'datetime', primary: true },
    userAgent: { type: 'text', default: '' }
  },
  uniques: [{ name: 'user_log_event_uq', properties: ['eventId', 'operateTime'] }],
  checks: [{ name: 'user_log_operation_check', expression: 'operation = any (array[0, 1, 2])' }],
  // Newest first, logins/logouts and failed attempts apart, and one user's history (see the migration).
  indexes: [
    {
      name: 'user_log_time_idx',
      expression: 'create index user_log_time_idx on user_log (operate_time desc, id desc) where operation < 2'
    },
    {
      name: 'user_log_failed_time_idx',
      expression: 'create index user_log_failed_time_idx on user_log (operate_time desc, id desc) where operation = 2'
    },
    {
      name: 'user_log_user_time_idx',
      expression: 'create index user_log_user_time_idx on user_log (user_id, operate_time desc, id desc)'
    }
  ]
})

/** The log's row count per operation and UTC day, kept by statement triggers on `user_log`: `X-Total-Count`. */
export interface UserLogTotalRow {
  operation: number
  day: string
  total: string
}

export const UserLogTotalEntity = new EntitySchema<UserLogTotalRow>({
  name: 'UserLogTotal',
  tableName: 'user_log_total',
  properties: {
    operation: { type: 'smallint', primary: true, autoincrement: false },
    day: { type: 'date', primary: true },
    total: { type: 'bigint', default: 0 }
  }
})

/** The log's row count per operation and UTC hour, kept by the same triggers: the edges of a time filter's total. */
export interface UserLogHourTotalRow {
  operation: number
  hour: Date
  total: string
}

export const UserLogHourTotalEntity = new EntitySchema<UserLogHourTotalRow>({
  name: 'UserLogHourTotal',
  tableName: 'user_log_hour_total',
  properties: {
    operation: { type: 'smallint', primary: true, autoincrement: false },
    hour: { type: 'datetime', primary: true },
    total: { type: 'bigint', default: 0 }
  }
})

/**
 * The user ids audit knows, fed by `identity.user.*` events (or a read-through on a miss). A deleted
 * user keeps its row as a tombstone (`deletedAt`): ids are never reused, and a late `updated` event
 * must not bring the user back.
 */
export interface KnownUserRow {
  id: number
  username: string
  isStaff: boolean
  isActive: boolean
  deletedAt: Date | null
  version: number
  updatedAt: Date
}

export const KnownUserEntity = new EntitySchema<KnownUserRow>({
  name: 'KnownUser',
  tableName: 'known_user',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: false },
    username: { type: 'string', length: 150 },
    isStaff: { type: 'boolean', default: false },
    isActive: { type: 'boolean', default: true },
    deletedAt: { type: 'datetime', nullable: true },
    version: { type: 'integer', default: 0 },
    updatedAt: { type: 'datetime', defaultRaw: 'now()', onCreate: () => new Date(), onUpdate: () => new Date() }
  }
})

/** A patient on the blacklist; removal sets `isDelete` to 1 and keeps the row. */
export interface BlackListRow {
  id: number
  patient: number
  joinTime: Date
  isDelete: number
  reason: string
  creator: number
}

export const BlackListEntity = new EntitySchema<BlackListRow>({
  name: 'BlackListEntry',
  tableName: 'black_list',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: true },
    patient: { type: 'integer', fieldName: 'patient_id' },
    joinTime: { type: 'datetime', defaultRaw: 'now()', onCreate: () => new Date() },
    isDelete: { type: 'smallint', default: 0 },
    reason: { type: 'string', length: 64 },
    creator: { type: 'integer', fieldName: 'creator_id' }
  },
  checks: [{ name: 'black_list_is_delete_check', expression: 'is_delete = any (array[0, 1])' }],
  indexes: [
    {
      name: 'black_list_active_patient_uq',
      expression: 'create unique index black_list_active_patient_uq on black_list (patient_id) where is_delete = 0'
    },
    {
      name: 'black_list_time_idx',
      expression: 'create index black_list_time_idx on black_list (join_time desc, id desc)'
    },
    {
      name: 'black_list_patient_idx',
      expression: 'create index black_list_patient_idx on black_list (patient_id, join_time desc, id desc)'
    }
  ]
})

export const entities = [UserLogEntity, UserLogTotalEntity, UserLogHourTotalEntity, KnownUserEntity, BlackListEntity]
