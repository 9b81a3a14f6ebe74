import { Type, type Static } from '@sinclair/typebox'

export const LoginBodySchema = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 150 }),
    password: Type.String({ minLength: 1, maxLength: 4096, writeOnly: true })
  },
  { title: 'LoginRequest', examples: [{ username: 'username', password: 'password' }] }
)
export type LoginBody = Static<typeof LoginBodySchema>

export const TokenPairSchema = Type.Object(
  {
    refresh: Type.String({ description: 'refresh token (7 days)' }),
    access: Type.String({ description: 'access token for `Authorization: Bearer` (60 minutes)' })
  },
  {
    $id: 'TokenPair',
    examples: [
      {
        refresh:
          'eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCIsImV4cCI6MTU3Njg5NjAwNywianRpIjoiMThmZDU3MzMxNzQ0NGM4ZGIzNTU4MTllYjE4MjUyYTEiLCJ1c2VyX2lkIjo3fQ.-xBt27NlNZ_fJYbar0es62pQZoZp9IhDcS01U3fpIYo',
        access:
          'eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjoxNTc2Mjk0ODA3LCJqdGkiOiJiNjhmMWIyMGEzMWY0YTIwOTUyMDhjYjNlM2NhMjM2YSIsInVzZXJfaWQiOjd9.OaJNTGpZm-pPYzfJCgk0JhBM0LTqBu4C0vBuj2EImjQ'
      }
    ]
  }
)
export type TokenPair = Static<typeof TokenPairSchema>

export const RefreshBodySchema = Type.Object(
  { refresh: Type.String({ minLength: 1, maxLength: 8192 }) },
  {
    title: 'RefreshRequest',
    examples: [
      {
        refresh:
          'eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCIsImV4cCI6MTU3Njg5NjAwNywianRpIjoiMThmZDU3MzMxNzQ0NGM4ZGIzNTU4MTllYjE4MjUyYTEiLCJ1c2VyX2lkIjo3fQ.-xBt27NlNZ_fJYbar0es62pQZoZp9IhDcS01U3fpIYo'
      }
    ]
  }
)
export type RefreshBody = Static<typeof RefreshBodySchema>

export const RefreshResponseSchema = Type.Object(
  {
    access: Type.String(),
    refresh: Type.Optional(Type.String({ description: 'a new refresh token when rotation is on' }))
  },
  {
    examples: [
      {
        access:
          'eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjoxNTc2Mjk0ODA3LCJqdGkiOiJiNjhmMWIyMGEzMWY0YTIwOTUyMDhjYjNlM2NhMjM2YSIsInVzZXJfaWQiOjd9.OaJNTGpZm-pPYzfJCgk0JhBM0LTqBu4C0vBuj2EImjQ'
      }
    ]
  }
)

export const TOKEN_TYPES = ['access', 'refresh'] as const
export type TokenType = (typeof TOKEN_TYPES)[number]

/** Claims compatible with djangorestframework-simplejwt, plus the session id and the admin flag. */
export const JwtClaimsSchema = Type.Object({
  token_type: Type.Union(TOKEN_TYPES.map((t) => Type.Literal(t))),
  exp: Type.Integer(),
  iat: Type.Integer(),
  jti: Type.String(),
  user_id: Type.Integer(),
  sid: Type.String({ description: 'session id; revoked on logout, password change, deactivation, deletion' }),
  is_staff: Type.Optional(Type.Boolean())
})
export type JwtClaims = Static<typeof JwtClaimsSchema>

export const JwksSchema = Type.Object(
  {
    keys: Type.Array(
      Type.Object({
        kty: Type.String(),
        crv: Type.Optional(Type.String()),
        x: Type.Optional(Type.String()),
        y: Type.Optional(Type.String()),
        kid: Type.String(),
        alg: Type.String(),
        use: Type.String()
      })
    )
  },
  {
    $id: 'Jwks',
    examples: [
      {
        keys: [
          {
            kty: 'OKP',
            crv: 'Ed25519',
            x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo',
            kid: 'k1',
            alg: 'EdDSA',
            use: 'sig'
          }
        ]
      }
    ]
  }
)
export type Jwks = Static<typeof JwksSchema>
