import { Type, type Static } from '@sinclair/typebox'
import { IdSchema, Nullable, PaginationQuerySchema, TimestampSchema } from './common.js'

export const GENDER_FEMALE = 0
export const GENDER_MALE = 1

/** The examples of the Chinese API document (用户注册, 某一个用户的信息, 更新某个用户信息). */
const PROFILE_INPUT_EXAMPLE = {
  gender: 0,
  occupation: 34,
  age: 18,
  name: 'name',
  identify_id: '100000190001010001',
  phone: '18888888888',
  address: 'address1'
}
const PROFILE_EXAMPLE = {
  age: 18,
  name: 'name',
  name_pinyin: 'name',
  gender: 0,
  identify_id: '100000190001010001',
  phone: '18888888888',
  address: 'address1',
  create_time: '2019-12-14T00:08:16.967+08:00',
  modify_time: '2019-12-14T00:08:16.967+08:00',
  user: 7,
  occupation: 34,
  creator: 7,
  modifier: null
}

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
  { $id: 'Profile', examples: [PROFILE_EXAMPLE] }
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
  {
    $id: 'User',
    examples: [
      { id: 7, username: 'test1', email: 'email1@test.com', is_staff: false, is_active: true, profile: PROFILE_EXAMPLE }
    ]
  }
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
  {
    title: 'ProfileInput',
    description: 'profile; `name`, `gender`, `age` and `identify_id` are required',
    examples: [PROFILE_INPUT_EXAMPLE]
  }
)
export type ProfileInput = Static<typeof ProfileInputSchema>

export const ProfilePatchSchema = Type.Partial(ProfileInputSchema, {
  title: 'ProfilePatch',
  description: 'only the profile fields sent change',
  examples: [{ phone: '18888888888', address: 'address1' }]
})
export type ProfilePatch = Static<typeof ProfilePatchSchema>

// Combining marks pass here so that a decomposed name (`e` + U+0301, as some keyboards and macOS send it)
// is taken as its composed form: identity stores the NFKC form and checks the same grammar on it, without
// marks (a mark that composes with nothing is refused there).
const username = Type.String({
  minLength: 1,
  maxLength: 150,
  pattern: '^[\\p{L}\\p{M}\\p{N}_.@+-]+$',
  'x-messages': { pattern: 'username_invalid' },
  description:
    'letters, digits and @ . + - _ (unique, case-insensitive); stored in Unicode NFKC, so a decomposed é is é'
})
const password = Type.String({
  minLength: 1,
  writeOnly: true,
  'x-check': 'password',
  description: '8–72 bytes of UTF-8, not entirely digits; write-only'
})
const email = Type.String({ maxLength: 254, format: 'email-or-empty', description: 'optional; unique when not empty' })

export const UserCreateBodySchema = Type.Object(
  {
    username,
    password,
    email: Type.Optional(email),
    profile: Type.Optional(Nullable(ProfileInputSchema))
  },
  {
    title: 'UserCreate',
    examples: [{ username: 'test1', password: 'password1', email: 'email1@test.com', profile: PROFILE_INPUT_EXAMPLE }]
  }
)
export type UserCreateBody = Static<typeof UserCreateBodySchema>

const adminFields = {
  is_staff: Type.Optional(Type.Boolean({ description: 'admin only' })),
  is_active: Type.Optional(Type.Boolean({ description: 'admin only' }))
}
const oldPassword = Type.Optional(
  Type.String({
    maxLength: 4096,
    writeOnly: true,
    description: 'the current password; required when changing your own password'
  })
)

export const UserUpdateBodySchema = Type.Object(
  {
    email: Type.Optional(email),
    password: Type.Optional(password),
    old_password: oldPassword,
    profile: Type.Optional(Nullable(ProfileInputSchema)),
    ...adminFields
  },
  {
    title: 'UserUpdate',
    examples: [
      { password: 'password1', old_password: 'password0', email: 'email1@test.com', profile: PROFILE_INPUT_EXAMPLE }
    ]
  }
)
export type UserUpdateBody = Static<typeof UserUpdateBodySchema>

export const UserPatchBodySchema = Type.Object(
  {
    email: Type.Optional(email),
    password: Type.Optional(password),
    old_password: oldPassword,
    profile: Type.Optional(Nullable(ProfilePatchSchema)),
    ...adminFields
  },
  { title: 'UserPatch', examples: [{ email: 'email1@test.com', profile: { phone: '18888888888' } }] }
)
export type UserPatchBody = Static<typeof UserPatchBodySchema>

export const UserListQuerySchema = Type.Composite([
  PaginationQuerySchema,
  Type.Object({
    search: Type.Optional(
      Type.String({
        maxLength: 150,
        description:
          'substring of username, name, name pinyin, pinyin initials or phone (each field on its own); case-insensitive'
      })
    ),
    occupation: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647 })),
    group: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647 })),
    gender: Type.Optional(Type.Integer({ enum: [0, 1] })),
    is_active: Type.Optional(Type.Boolean()),
    cursor: Type.Optional(
      Type.String({
        maxLength: 64,
        description:
          'opaque page position from a `Link` header; send it empty to start: pages are then found by key, as fast at ' +
          'any depth, and `Link` carries cursors (not with `offset`)'
      })
    )
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
  { $id: 'UserGroupRow', examples: [{ id: 216, name: 'group1', location: 'location1', contact_phone: '18888888881' }] }
)
export type UserGroupRow = Static<typeof UserGroupRowSchema>
