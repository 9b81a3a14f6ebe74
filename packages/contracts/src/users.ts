import { Type, type Static } from '@sinclair/typebox'
import { IdSchema, Nullable, PaginationQuerySchema, TimestampSchema } from './common.js'

export const GENDER_FEMALE = 0
export const GENDER_MALE = 1

const ProfileFields = {
  name: Type.String({ minLength: 1, maxLength: 64, description: 'real name, e.g. 张三' }),
  gender: Type.Integer({ enum: [0, 1], description: '0 female, 1 male' }),
  age: Type.Integer({ minimum: 0, maximum: 150 }),
  identify_id: Type.String({
    minLength: 1,
    'x-check': 'resident-id',
    description: 'resident ID number: 17 digits then a digit or X, with a valid birth date in positions 7–14'
  }),
  phone: Type.String({
    pattern: '^(1[3-9][0-9]{9})?$',
    'x-messages': { pattern: 'phone_invalid' },
    description: 'mainland mobile number, 1[3-9] then 9 digits; may be empty'
  }),
  address: Type.String({ maxLength: 256 }),
  occupation: Nullable(Type.Integer({ minimum: 1, maximum: 2147483647, description: 'id of an existing occupation' }))
}

export const ProfileSchema = Type.Object(
  {
    age: Type.Integer(),
    name: Type.String(),
    name_pinyin: Type.String({ description: 'pinyin of name, lower case, no tones: 张三 → zhangsan' }),
    gender: Type.Integer({ enum: [0, 1] }),
    identify_id: Type.String(),
    phone: Type.String(),
    address: Type.String(),
    create_time: TimestampSchema,
    modify_time: TimestampSchema,
    user: IdSchema,
    occupation: Nullable(IdSchema),
    creator: Nullable(IdSchema),
    modifier: Nullable(IdSchema)
  },
  { $id: 'Profile' }
)
export type Profile = Static<typeof ProfileSchema>

export const UserSchema = Type.Object(
  {
    id: IdSchema,
    username: Type.String(),
    email: Type.String(),
    is_staff: Type.Boolean(),
    is_active: Type.Boolean(),
    profile: Nullable(Type.Ref('Profile'))
  },
  { $id: 'User' }
)
export type User = Omit<Static<typeof UserSchema>, 'profile'> & { profile: Profile | null }

export const ProfileInputSchema = Type.Object(
  {
    name: ProfileFields.name,
    gender: ProfileFields.gender,
    age: ProfileFields.age,
    identify_id: ProfileFields.identify_id,
    phone: Type.Optional(ProfileFields.phone),
    address: Type.Optional(ProfileFields.address),
    occupation: Type.Optional(ProfileFields.occupation)
  },
  { description: 'profile; `name`, `gender`, `age` and `identify_id` are required' }
)
export type ProfileInput = Static<typeof ProfileInputSchema>

export const ProfilePatchSchema = Type.Partial(ProfileInputSchema, { description: 'only the profile fields sent change' })
export type ProfilePatch = Static<typeof ProfilePatchSchema>

const username = Type.String({
  minLength: 1,
  maxLength: 150,
  pattern: '^[\\p{L}\\p{N}_.@+-]+$',
  'x-messages': { pattern: 'username_invalid' },
  description: 'letters, digits and @ . + - _ (unique, case-insensitive)'
})
const password = Type.String({
  minLength: 1,
  writeOnly: true,
  'x-check': 'password',
  description: '8–72 bytes of UTF-8, not entirely digits; write-only'
})
const email = Type.String({ maxLength: 254, format: 'email-or-empty', description: 'optional; unique when not empty' })

export const UserCreateBodySchema = Type.Object({
  username,
  password,
  email: Type.Optional(email),
  profile: Type.Optional(Nullable(ProfileInputSchema))
})
export type UserCreateBody = Static<typeof UserCreateBodySchema>

const adminFields = {
  is_staff: Type.Optional(Type.Boolean({ description: 'admin only' })),
  is_active: Type.Optional(Type.Boolean({ description: 'admin only' }))
}
const oldPassword = Type.Optional(
  Type.String({ maxLength: 4096, writeOnly: true, description: 'the current password; required when changing your own password' })
)

export const UserUpdateBodySchema = Type.Object({
  email: Type.Optional(email),
  password: Type.Optional(password),
  old_password: oldPassword,
  profile: Type.Optional(Nullable(ProfileInputSchema)),
  ...adminFields
})
export type UserUpdateBody = Static<typeof UserUpdateBodySchema>

export const UserPatchBodySchema = Type.Object({
  email: Type.Optional(email),
  password: Type.Optional(password),
  old_password: oldPassword,
  profile: Type.Optional(Nullable(ProfilePatchSchema)),
  ...adminFields
})
export type UserPatchBody = Static<typeof UserPatchBodySchema>

export const UserListQuerySchema = Type.Composite([
  PaginationQuerySchema,
  Type.Object({
    search: Type.Optional(
      Type.String({ maxLength: 150, description: 'substring of username, name, name pinyin, pinyin initials or phone; case-insensitive' })
    ),
    occupation: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647 })),
    group: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647 })),
    gender: Type.Optional(Type.Integer({ enum: [0, 1] })),
    is_active: Type.Optional(Type.Boolean())
  })
])
export type UserListQuery = Static<typeof UserListQuerySchema>

/** A group as `GET /api/users/{pk}/groups/` shows it: flattened with its profile. */
export const UserGroupRowSchema = Type.Object(
  {
    id: IdSchema,
    name: Type.String(),
    location: Nullable(Type.String()),
    contact_phone: Nullable(Type.String())
  },
  { $id: 'UserGroupRow' }
)
export type UserGroupRow = Static<typeof UserGroupRowSchema>
