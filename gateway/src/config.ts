import { Type, type Static } from '@sinclair/typebox'
import { BaseConfigProperties, InternalUrlProperties, loadConfig } from '@roster/service-kit'

const { HOST, LOG_LEVEL, NATS_URL, NATS_PREFIX, IDENTITY_URL, REVOCATION_TTL_SECONDS } = BaseConfigProperties

export const GatewayConfigSchema = Type.Object({
  HOST,
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  /** `/metrics` and `/ready` of the gateway; never exposed. */
  INTERNAL_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 9080 }),
  LOG_LEVEL,
  NATS_URL,
  NATS_PREFIX,
  IDENTITY_URL,
  REVOCATION_TTL_SECONDS,
  DIRECTORY_URL: Type.String({ default: 'http://127.0.0.1:3002' }),
  AUDIT_URL: Type.String({ default: 'http://127.0.0.1:3003' }),
  // Where each service's own OpenAPI document is read for the merged `/docs`; requests are never forwarded there.
  ...InternalUrlProperties,
  TRUSTED_PROXIES: Type.String({
    default: '',
    description: 'comma-separated addresses/CIDRs of proxies in front of the gateway whose X-Forwarded-For is believed'
  }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 0, default: 60000, description: 'requests per client address per minute; 0 turns it off' }),
  CORS_ORIGINS: Type.String({ default: '*', description: "comma-separated allowed origins, or '*'" }),
  UPSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 30000 })
})
export type GatewayConfig = Static<typeof GatewayConfigSchema>

export function readConfig(overrides: Partial<GatewayConfig> = {}): GatewayConfig {
  return loadConfig(GatewayConfigSchema, overrides)
}
