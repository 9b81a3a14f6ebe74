import { EntitySchema, type Opt } from '@mikro-orm/core'

/**
 * One entity per identity table, matching the migrated schema exactly (`test/schema.test.ts` asserts that
 * MikroORM's schema diff is empty). Partial and expression indexes are given as the migrations create them.
 * Only the repositories (`src/repositories/`) use these.
 */

export interface UserRow {
  id: number
  username: string
  /** `identifierKey(username)`: what uniqueness and login compare (see domain/identifiers.ts). */
  usernameKey: string
  email: string
  password: string
  isStaff: boolean
  isActive: boolean
  dateJoined: Date
  lastLogin: Date | null
  /** Raised with every change (see `UserRepository.nextFact`), so replicas downstream order the user's facts. */
  version: Opt<number>
}

export const UserEntity = new EntitySchema<UserRow>({
  name: 'User',
  tableName: 'app_user',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: true },
    username: { type: 'string', length: 150 },
    usernameKey: { type: 'text', fieldName: 'username_key', unique: 'app_user_username_key_uq' },
    email: { type: 'string', length: 254, default: '' },
    password: { type: 'text', hidden: true },
    isStaff: { type: 'boolean', default: false },
    isActive: { type: 'boolean', default: true },
    dateJoined: { type: 'datetime', defaultRaw: 'now()', onCreate: () => new Date() },
    lastLogin: { type: 'datetime', nullable: true },
    version: { type: 'integer', default: 1 }
  },
  indexes: [
    {
      name: 'app_user_email_uq',
      expression: `create unique index app_user_email_uq on app_user (lower(email)) where email <> ''`
    },
    { name: 'app_user_active_idx', expression: 'create index app_user_active_idx on app_user (is_active, id)' }
  ]
})

/** The number of users per value of each single list filter, kept by statement triggers (see the migrations). */
export interface UserListCountRow {
  filter: string
  value: number
  total: string
}

export const UserListCountEntity = new EntitySchema<UserListCountRow>({
  name: 'UserListCount',
  tableName: 'user_list_count',
  properties: {
    filter: { type: 'text', primary: true },
    value: { type: 'integer', primary: true },
    total: { type: 'bigint' }
  }
})

/** The number of users, kept by statement triggers (see the migrations), for the unfiltered list's total. */
export interface UserTotalRow {
  total: string
}

export const UserTotalEntity = new EntitySchema<UserTotalRow>({
  name: 'UserTotal',
  tableName: 'app_user_total',
  properties: {
    total: { type: 'bigint', primary: true, autoincrement: false }
  }
})

export interface ProfileRow {
  user: number
  name: string
  namePinyin: string
  nameInitials: string
  gender: number
  age: number
  identifyId: string
  phone: string
  address: string
  occupation: number | null
  creator: number | null
  modifier: number | null
  createTime: Date
  modifyTime: Date
}

export const ProfileEntity = new EntitySchema<ProfileRow>({
  name: 'Profile',
  tableName: 'profile',
  properties: {
    user: {
      kind: 'm:1',
      entity: 'User',
      mapToPk: true,
      primary: true,
      fieldName: 'user_id',
      deleteRule: 'cascade',
      updateRule: 'no action',
      foreignKeyName: 'profile_user_id_fkey'
    },
    name: { type: 'string', length: 64 },
    namePinyin: { type: 'string', length: 512 },
    nameInitials: { type: 'string', length: 128 },
    gender: { type: 'smallint' },
    age: { type: 'smallint' },
    identifyId: { type: 'string', length: 18 },
    phone: { type: 'string', length: 11, default: '' },
    address: { type: 'string', length: 256, default: '' },
    occupation: { type: 'integer', nullable: true, fieldName: 'occupation_id' },
    creator: { type: 'integer', nullable: true, fieldName: 'creator_id' },
    modifier: { type: 'integer', nullable: true, fieldName: 'modifier_id' },
    createTime: { type: 'datetime', defaultRaw: 'now()', onCreate: () => new Date() },
    modifyTime: { type: 'datetime', defaultRaw: 'now()', onCreate: () => new Date() }
  },
  indexes: [
    {
      name: 'profile_gender_user_idx',
      expression: 'create index profile_gender_user_idx on profile (gender, user_id)'
    },
    {
      name: 'profile_occupation_user_idx',
      expression: 'create index profile_occupation_user_idx on profile (occupation_id, user_id)'
    }
  ]
})

export interface SessionRow {
  id: string
  user: number
  refreshJti: string
  createdAt: Date
  expiresAt: Date
  revokedAt: Date | null
  ip: string
  userAgent: string
}

export const SessionEntity = new EntitySchema<SessionRow>({
  name: 'Session',
  tableName: 'session',
  properties: {
    id: { type: 'uuid', primary: true },
    user: {
      kind: 'm:1',
      entity: 'User',
      mapToPk: true,
      fieldName: 'user_id',
      deleteRule: 'cascade',
      updateRule: 'no action',
      foreignKeyName: 'session_user_id_fkey'
    },
    refreshJti: { type: 'uuid' },
    createdAt: { type: 'datetime', defaultRaw: 'now()', onCreate: () => new Date() },
    expiresAt: { type: 'datetime' },
    revokedAt: { type: 'datetime', nullable: true },
    ip: { type: 'text', default: '' },
    userAgent: { type: 'text', default: '' }
  },
  indexes: [
    {
      name: 'session_user_idx',
      expression: 'create index session_user_idx on session (user_id) where revoked_at is null'
    }
  ]
})

/** Failed-login counters per username and per client address (see `ThrottleRepository`). */
export interface LoginThrottleRow {
  key: string
  windowStart: Date
  failures: number
  pending: number
}

export const LoginThrottleEntity = new EntitySchema<LoginThrottleRow>({
  name: 'LoginThrottle',
  tableName: 'login_throttle',
  properties: {
    key: { type: 'text', primary: true },
    windowStart: { type: 'datetime' },
    failures: { type: 'integer' },
    pending: { type: 'integer', default: 0 }
  }
})

/** Replicas of the directory's facts, fed by `DIRECTORY` events; `version` orders them, `deleted` is a tombstone. */
export interface OccupationReplicaRow {
  id: number
  name: string
  version: number
  deleted: boolean
}

export const OccupationReplicaEntity = new EntitySchema<OccupationReplicaRow>({
  name: 'OccupationReplica',
  tableName: 'occupation_replica',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: false },
    name: { type: 'text' },
    version: { type: 'integer' },
    deleted: { type: 'boolean', default: false }
  }
})

export interface GroupReplicaRow {
  id: number
  name: string
  location: string | null
  contactPhone: string | null
  version: number
  deleted: boolean
}

export const GroupReplicaEntity = new EntitySchema<GroupReplicaRow>({
  name: 'GroupReplica',
  tableName: 'group_replica',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: false },
    name: { type: 'text' },
    location: { type: 'text', nullable: true },
    contactPhone: { type: 'text', nullable: true },
    version: { type: 'integer' },
    deleted: { type: 'boolean', default: false }
  }
})

export interface MembershipRow {
  group: number
  user: number
  createdAt: Date
}

export const MembershipEntity = new EntitySchema<MembershipRow>({
  name: 'Membership',
  tableName: 'membership',
  properties: {
    group: { type: 'integer', primary: true, fieldName: 'group_id', autoincrement: false },
    user: {
      kind: 'm:1',
      entity: 'User',
      mapToPk: true,
      primary: true,
      fieldName: 'user_id',
      deleteRule: 'cascade',
      updateRule: 'no action',
      foreignKeyName: 'membership_user_id_fkey',
      index: 'membership_user_idx'
    },
    createdAt: { type: 'datetime', defaultRaw: 'now()', onCreate: () => new Date() }
  }
})

/** How many characters of each suffix `user_search_key` keeps: longer searches are checked against the fields. */
export const SEARCH_KEY_LENGTH = 32

/** Every suffix of each searched field of a user, lower case, kept by triggers (see the migrations). */
export interface UserSearchKeyRow {
  key: string
  user: number
}

export const UserSearchKeyEntity = new EntitySchema<UserSearchKeyRow>({
  name: 'UserSearchKey',
  tableName: 'user_search_key',
  properties: {
    key: { type: 'text', primary: true },
    user: { type: 'integer', primary: true, fieldName: 'user_id' }
  }
})

export const entities = [
  UserEntity,
  UserTotalEntity,
  UserListCountEntity,
  UserSearchKeyEntity,
  ProfileEntity,
  SessionEntity,
  LoginThrottleEntity,
  OccupationReplicaEntity,
  GroupReplicaEntity,
  MembershipEntity
]
