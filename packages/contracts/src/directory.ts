import { Type, type Static } from '@sinclair/typebox'
import { IdSchema, Nullable, PaginationQuerySchema, TimestampSchema } from './common.js'

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
  { $id: 'GroupProfile' }
)
export type GroupProfile = Static<typeof GroupProfileSchema>

export const GroupSchema = Type.Object(
  {
    id: IdSchema,
    name: Type.String(),
    profile: Nullable(Type.Ref('GroupProfile'))
  },
  { $id: 'Group' }
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
    description:
      'group profile; absent or null keeps it; an object creates it or replaces it (PUT: fields not sent become empty) ' +
      'or changes the fields sent (PATCH)'
  }
)
export type GroupProfileInput = Static<typeof GroupProfileInputSchema>

const groupProfileField = Type.Optional(Nullable(GroupProfileInputSchema))

export const GroupBodySchema = Type.Object({ name: groupName, profile: groupProfileField })
export type GroupBody = Static<typeof GroupBodySchema>

export const GroupPatchBodySchema = Type.Object({ name: Type.Optional(groupName), profile: groupProfileField })
export type GroupPatchBody = Static<typeof GroupPatchBodySchema>

export const GroupListQuerySchema = Type.Composite([
  PaginationQuerySchema,
  Type.Object({ search: Type.Optional(Type.String({ maxLength: 150, description: 'substring of name, case-insensitive' })) })
])
export type GroupListQuery = Static<typeof GroupListQuerySchema>

export const OccupationSchema = Type.Object({ id: IdSchema, name: Type.String() }, { $id: 'Occupation' })
export type Occupation = Static<typeof OccupationSchema>

const occupationName = Type.String({ minLength: 1, maxLength: 255, description: 'unique, case-insensitive' })

export const OccupationBodySchema = Type.Object({ name: occupationName })
export type OccupationBody = Static<typeof OccupationBodySchema>

export const OccupationPatchBodySchema = Type.Object({ name: Type.Optional(occupationName) })
export type OccupationPatchBody = Static<typeof OccupationPatchBodySchema>

export const OccupationListQuerySchema = Type.Composite([
  PaginationQuerySchema,
  Type.Object({ search: Type.Optional(Type.String({ maxLength: 255, description: 'substring of name, case-insensitive' })) })
])
export type OccupationListQuery = Static<typeof OccupationListQuerySchema>
