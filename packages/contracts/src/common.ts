import { Type, type Static, type TSchema, type SchemaOptions } from '@sinclair/typebox'

/**
 * A value that may also be `null`. Expressed with OpenAPI 3.0's `nullable` (which Ajv understands)
 * rather than `anyOf [T, null]`, because type coercion on an `anyOf` would turn `null` into `0` or `""`.
 */
export const Nullable = <T extends TSchema>(schema: T) => Type.Unsafe<Static<T> | null>({ ...schema, nullable: true })

/** `T | null` as `anyOf`, for messages that are checked but never coerced (events). */
export const OrNull = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

/** RFC 3339 time with the configured zone's offset, e.g. `2019-12-14T00:08:16.967+08:00`. */
export const TimestampSchema = Type.String({ format: 'date-time', examples: ['2019-12-14T00:08:16.967+08:00'] })

export const IdSchema = Type.Integer({ minimum: 1, maximum: 2147483647 })

/** Path ids are matched as strings so that `abc` or an out-of-range id answers 404, never 400 or 500. */
export const PkParamsSchema = Type.Object({ pk: Type.String({ pattern: '^[0-9]{1,10}$', description: 'resource id' }) })
export type PkParams = Static<typeof PkParamsSchema>

export const DetailSchema = Type.Object(
  { detail: Type.String(), code: Type.Optional(Type.String()) },
  {
    $id: 'Detail',
    description: 'An error or a confirmation not tied to one field',
    examples: [{ detail: '删除成功。' }]
  }
)
export type Detail = Static<typeof DetailSchema>

/** DRF-shaped field errors: `{"field": ["message"], "profile": {"field": ["message"]}}`. */
export const FieldErrorsSchema = Type.Record(Type.String(), Type.Unknown(), {
  $id: 'FieldErrors',
  description:
    'Field errors in the Django REST Framework shape; errors not tied to one field are under non_field_errors',
  examples: [{ username: ['该字段是必填项。'], profile: { identify_id: ['请输入有效的身份证号码。'] } }]
})

export const PaginationQuerySchema = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'page size (1–1000)' })),
  offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647, default: 0, description: 'rows to skip' }))
})
export type PaginationQuery = Static<typeof PaginationQuerySchema>

export const ListHeadersDescription =
  'A bare JSON array; `X-Total-Count` carries the number of matching rows and `Link` the next/prev pages (RFC 8288).'

export function withDescription<T extends TSchema>(schema: T, options: SchemaOptions): T {
  return { ...schema, ...options }
}
