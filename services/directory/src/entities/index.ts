import { EntitySchema } from '@mikro-orm/core'

/** `version` starts at 1 and grows with every change (and the deletion); events carry it so replicas keep the newest. */
export interface GroupRow {
  id: number
  name: string
  version: number
}

export const GroupEntity = new EntitySchema<GroupRow>({
  name: 'Group',
  tableName: 'app_group',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: true },
    name: { type: 'string', length: 150 },
    version: { type: 'integer', default: 1 }
  }
})

export interface GroupProfileRow {
  group: number
  location: string
  contactPhone: string
  creator: number | null
  modifier: number | null
  createTime: Date
  modifyTime: Date
}

export const GroupProfileEntity = new EntitySchema<GroupProfileRow>({
  name: 'GroupProfile',
  tableName: 'group_profile',
  properties: {
    group: { type: 'integer', primary: true, fieldName: 'group_id', autoincrement: false },
    location: { type: 'string', length: 255, default: '' },
    contactPhone: { type: 'string', length: 20, default: '' },
    creator: { type: 'integer', nullable: true, fieldName: 'creator_id' },
    modifier: { type: 'integer', nullable: true, fieldName: 'modifier_id' },
    createTime: { type: 'datetime' },
    modifyTime: { type: 'datetime' }
  }
})

export interface OccupationRow {
  id: number
  name: string
  version: number
}

export const OccupationEntity = new EntitySchema<OccupationRow>({
  name: 'Occupation',
  tableName: 'occupation',
  properties: {
    id: { type: 'integer', primary: true, autoincrement: true },
    name: { type: 'string', length: 255 },
    version: { type: 'integer', default: 1 }
  }
})

export const entities = [GroupEntity, GroupProfileEntity, OccupationEntity]
