import { Type, type Static } from '@sinclair/typebox'
import { IdSchema, Nullable, PaginationQuerySchema, TimestampSchema } from './common.js'

/** The examples of the Chinese API document (某一个组的详细信息, 添加组). */
const GROUP_PROFILE_EXAMPLE = {
  location: 'location1',
  contact_phone: '18888888881',
  create_time: '2019-12-14T15:08:26.728+08:00',
  modify_time: '2019-12-14T15:32:37.265+08:00',
  group: 216,
  creator: 1,
  modifier: 1
}
const GROUP_PROFILE_INPUT_EXAMPLE = { location: 'location1', contact_phone: '18888888881' }

/** The directory service's public representations: groups (with an optional profile) and occupations. */

export const GroupProfileSchema = Type.Object(
  {
    location: Type.String(),
    contact_phone: Type.String(),
    create_time: TimestampSchema,
    modify_time: TimestampSchema,
    group: IdSchema,
    creator: Nullable(IdSchema),
    modifier: Nullable(IdSchema)
  },
  { $id: 'GroupProfile', examples: [GROUP_PROFILE_EXAMPLE] }
)
export type GroupProfile = Static<typeof GroupProfileSchema>

export const GroupSchema = Type.Object(
  {
    id: IdSchema,
    name: Type.String(),
    profile: Nullable(Type.Ref('GroupProfile'))
  },
  { $id: 'Group', examples: [{ id: 216, name: 'group1', profile: GROUP_PROFILE_EXAMPLE }] }
)
export type Group = Omit<Static<typeof GroupSchema>, 'profile'> & { profile: GroupProfile | null }

const groupName = Type.String({ minLength: 1, maxLength: 150, description: 'unique, case-insensitive' })

export const GroupProfileInputSchema = Type.Object(
  {
    location: Type.Optional(Type.String({ maxLength: 255 })),
    contact_phone: Type.Optional(
      Type.String({
        maxLength: 20,
        pattern: '^[0-9+\\- ]*$',
        'x-messages': { pattern: 'contact_phone_invalid' },
        description: 'digits, `+`, `-` and spaces; may be empty'
      })
    )
  },
  {
    title: 'GroupProfileInput',
    examples: [GROUP_PROFILE_INPUT_EXAMPLE],
    description:
      'group profile; absent or null keeps it; an object creates it or replaces it (PUT: fields not sent become empty) ' +
      'or changes the fields sent (PATCH)'
  }
)
export type GroupProfileInput = Static<typeof GroupProfileInputSchema>

const groupProfileField = Type.Optional(Nullable(GroupProfileInputSchema))

export const GroupBodySchema = Type.Object(
  { name: groupName, profile: groupProfileField },
  { title: 'GroupWrite', examples: [{ name: 'group1', profile: GROUP_PROFILE_INPUT_EXAMPLE }] }
)
export type GroupBody = Static<typeof GroupBodySchema>

export const GroupPatchBodySchema = Type.Object(
  { name: Type.Optional(groupName), profile: groupProfileField },
  { title: 'GroupPatch', examples: [{ profile: { contact_phone: '18888888881' } }] }
)
export type GroupPatchBody = Static<typeof GroupPatchBodySchema>

export const GroupListQuerySchema = Type.Composite([
  PaginationQuerySchema,
  Type.Object({
    search: Type.Optional(Type.String({ maxLength: 150, description: 'substring of name, case-insensitive' }))
  })
])
export type GroupListQuery = Static<typeof GroupListQuerySchema>

export const OccupationSchema = Type.Object(
  { id: IdSchema, name: Type.String() },
  { $id: 'Occupation', examples: [{ id: 1, name: 'name' }] }
)
export type Occupation = Static<typeof OccupationSchema>

const occupationName = Type.String({ minLength: 1, maxLength: 255, description: 'unique, case-insensitive' })

export const OccupationBodySchema = Type.Object(
  { name: occupationName },
  { title: 'OccupationWrite', examples: [{ name: 'name' }] }
)
export type OccupationBody = Static<typeof OccupationBodySchema>

export const OccupationPatchBodySchema = Type.Object(
  { name: Type.Optional(occupationName) },
  { title: 'OccupationPatch', examples: [{ name: 'name' }] }
)
export type OccupationPatchBody = Static<typeof OccupationPatchBodySchema>

export const OccupationListQuerySchema = Type.Composite([
  PaginationQuerySchema,
  Type.Object({
    search: Type.Optional(Type.String({ maxLength: 255, description: 'substring of name, case-insensitive' }))
  })
])
export type OccupationListQuery = Static<typeof OccupationListQuerySchema>
