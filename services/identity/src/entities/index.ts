import { EntitySchema } from '@mikro-orm/core'

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
}

export const UserEntity = new EntitySchema<UserRow>({
  name: 'User',
  tableName: 'app_user',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: true },
    username: { type: 'string', length: 150 },
    usernameKey: { type: 'text', fieldName: 'username_key' },
    email: { type: 'string', length: 254, default: '' },
    password: { type: 'text', hidden: true },
    isStaff: { type: 'boolean', default: false },
    isActive: { type: 'boolean', default: true },
    dateJoined: { type: 'datetime', onCreate: () => new Date() },
    lastLogin: { type: 'datetime', nullable: true }
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
    user: { type: 'integer', primary: true, fieldName: 'user_id', autoincrement: false },
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
    createTime: { type: 'datetime', onCreate: () => new Date() },
    modifyTime: { type: 'datetime', onCreate: () => new Date(), onUpdate: () => new Date() }
  }
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
    user: { type: 'integer', fieldName: 'user_id' },
    refreshJti: { type: 'uuid' },
    createdAt: { type: 'datetime', onCreate: () => new Date() },
    expiresAt: { type: 'datetime' },
    revokedAt: { type: 'datetime', nullable: true },
    ip: { type: 'text', default: '' },
    userAgent: { type: 'text', default: '' }
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
    user: { type: 'integer', primary: true, fieldName: 'user_id', autoincrement: false },
    createdAt: { type: 'datetime', onCreate: () => new Date() }
  }
})

export const entities = [UserEntity, ProfileEntity, SessionEntity, OccupationReplicaEntity, GroupReplicaEntity, MembershipEntity]
