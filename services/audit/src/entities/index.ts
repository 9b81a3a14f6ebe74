import { EntitySchema } from '@mikro-orm/core'

/** One login, logout or failed login attempt, written only by the `IDENTITY` consumer; `eventId` is unique. */
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
    eventId: { type: 'uuid', unique: true },
    user: { type: 'integer', nullable: true, fieldName: 'user_id' },
    username: { type: 'string', length: 150, default: '' },
    ip: { type: 'text', default: '' },
    operation: { type: 'smallint' },
    operator: { type: 'integer', nullable: true, fieldName: 'operator_id' },
    operateTime: { type: 'datetime' },
    userAgent: { type: 'text', default: '' }
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
    updatedAt: { type: 'datetime', onCreate: () => new Date(), onUpdate: () => new Date() }
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
    joinTime: { type: 'datetime', onCreate: () => new Date() },
    isDelete: { type: 'smallint', default: 0 },
    reason: { type: 'string', length: 64 },
    creator: { type: 'integer', fieldName: 'creator_id' }
  }
})

export const entities = [UserLogEntity, KnownUserEntity, BlackListEntity]
