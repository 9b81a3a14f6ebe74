import { Type, type Static } from '@sinclair/typebox'
import { InternalUrlProperties, loadConfig, serviceConfigSchema } from '@roster/service-kit'

export const AuditConfigSchema = serviceConfigSchema({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3003 }),
  INTERNAL_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3103 }),
  IDENTITY_INTERNAL_URL: Type.String({
    ...InternalUrlProperties.IDENTITY_INTERNAL_URL,
    description: "identity's internal listener, asked whether an unknown user id exists (empty: none)"
  }),
  IDENTITY_READ_THROUGH_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 30000,
    default: 2000,
    description: 'how long to wait for identity when asking whether an unknown user id exists'
  }),
  AUDIT_RETENTION_DAYS: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 36500,
      description: 'drop whole months of user logs that ended this many days ago (unset: keep everything)'
    })
  ),
  AUDIT_PARTITIONS_AHEAD: Type.Integer({
    minimum: 1,
    maximum: 24,
    default: 3,
    description: 'months of user-log partitions made ahead of time (checked at start-up and every hour)'
  })
})
export type AuditConfig = Static<typeof AuditConfigSchema>

export function readConfig(overrides: Partial<AuditConfig> = {}): AuditConfig {
  return loadConfig(AuditConfigSchema, overrides)
}
