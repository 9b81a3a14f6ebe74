import { Type, type Static } from '@sinclair/typebox'
import { BaseConfigProperties, loadConfig } from '@roster/service-kit'

const { HOST, LOG_LEVEL, NATS_URL, NATS_PREFIX, IDENTITY_URL, REVOCATION_TTL_SECONDS } = BaseConfigProperties

export const GatewayConfigSchema = Type.Object({
  HOST,
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  LOG_LEVEL,
  NATS_URL,
  NATS_PREFIX,
  IDENTITY_URL,
  REVOCATION_TTL_SECONDS,
  DIRECTORY_URL: Type.String({ default: 'http://127.0.0.1:3002' }),
  AUDIT_URL: Type.String({ default: 'http://127.0.0.1:3003' }),
  TRUSTED_PROXIES: Type.String({
    default: '',
    description: 'comma-separated addresses/CIDRs of proxies in front of the gateway whose X-Forwarded-For is believed'
  }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 0, default: 60000, description: 'requests per client address per minute; 0 turns it off' }),
  CORS_ORIGINS: Type.String({ default: '*', description: "comma-separated allowed origins, or '*'" }),
  UPSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 30000 }),
  CLIENT_HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10000, description: 'time a client may take to send its headers' }),
  CLIENT_REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 30000, description: 'time a client may take to send a whole request, body included' }),
  BODY_BUFFER_BUDGET_BYTES: Type.Integer({
    minimum: 1048576,
    default: 134217728,
    description: 'bodies and answers the gateway holds in memory at once (past it: an upload is a 503, an answer is streamed)'
  }),
  CLIENT_KEEP_ALIVE_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    default: 72000,
    description: 'how long an idle client connection is kept open (longer than a load balancer in front keeps its own)'
  })
})
export type GatewayConfig = Static<typeof GatewayConfigSchema>

export function readConfig(overrides: Partial<GatewayConfig> = {}): GatewayConfig {
  return loadConfig(GatewayConfigSchema, overrides)
}
