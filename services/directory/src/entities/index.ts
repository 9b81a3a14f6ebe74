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
  },
  // names are unique case-insensitively (see `domain/constraints.ts` for what a violation answers)
  indexes: [
    { name: 'app_group_name_uq', expression: 'create unique index app_group_name_uq on app_group (lower(name))' }
  ]
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
    // the group's id (the row goes with the group: on delete cascade)
    group: {
      kind: '1:1',
      entity: 'Group',
      owner: true,
      primary: true,
      mapToPk: true,
      fieldName: 'group_id',
      foreignKeyName: 'group_profile_group_id_fkey',
      deleteRule: 'cascade',
      updateRule: 'no action'
    },
    location: { type: 'string', length: 255, default: '' },
    contactPhone: { type: 'string', length: 20, default: '' },
    creator: { type: 'integer', nullable: true, fieldName: 'creator_id' },
    modifier: { type: 'integer', nullable: true, fieldName: 'modifier_id' },
    createTime: { type: 'datetime', defaultRaw: 'now()' },
    modifyTime: { type: 'datetime', defaultRaw: 'now()' }
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
  },
  indexes: [
    { name: 'occupation_name_uq', expression: 'create unique index occupation_name_uq on occupation (lower(name))' }
  ]
})

export const entities = [GroupEntity, GroupProfileEntity, OccupationEntity]
