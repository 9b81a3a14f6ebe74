import { Type, type Static } from '@sinclair/typebox'
import { BaseConfigProperties, ConfigError, InternalUrlProperties, loadConfig } from '@roster/service-kit'

const {
  HOST,
  LOG_LEVEL,
  NATS_URL,
  NATS_PREFIX,
  IDENTITY_URL,
  REVOCATION_TTL_SECONDS,
  HEAP_GROWING_PERCENT,
  IDLE_COLLECT_SECONDS
} = BaseConfigProperties

export const GatewayConfigSchema = Type.Object({
  HOST,
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  /** `/metrics` and `/ready` of the gateway; never exposed. */
  INTERNAL_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 9080 }),
  LOG_LEVEL,
  HEAP_GROWING_PERCENT,
  IDLE_COLLECT_SECONDS,
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
  RATE_LIMIT_MAX: Type.Integer({
    minimum: 0,
    default: 60000,
    description: 'requests per client address per minute; 0 turns it off'
  }),
  CORS_ORIGINS: Type.String({ default: '*', description: "comma-separated allowed origins, or '*'" }),
  UPSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 30000 }),
  CLIENT_HEADERS_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    default: 10000,
    description: 'time a client may take to send its headers'
  }),
  CLIENT_REQUEST_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    default: 30000,
    description: 'time a client may take to send a whole request, body included'
  }),
  BODY_BUFFER_BUDGET_BYTES: Type.Integer({
    minimum: 1048576,
    default: 134217728,
    description:
      'bodies and answers the gateway holds in memory at once (past it: an upload is a 503, an answer is streamed)'
  }),
  CLIENT_KEEP_ALIVE_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    default: 72000,
    description: 'how long an idle client connection is kept open (longer than a load balancer in front keeps its own)'
  })
})
export type GatewayConfig = Static<typeof GatewayConfigSchema>

const UPSTREAMS = ['IDENTITY_URL', 'DIRECTORY_URL', 'AUDIT_URL'] as const
const INTERNALS = ['IDENTITY_INTERNAL_URL', 'DIRECTORY_INTERNAL_URL', 'AUDIT_INTERNAL_URL'] as const

function origin(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return url
  }
}

/**
 * Reads the gateway's environment. An upstream (where requests are forwarded) that is some service's
 * internal listener is refused: forwarding there would open every internal route to the public.
 */
export function readConfig(
  overrides: Partial<GatewayConfig> = {},
  env: NodeJS.ProcessEnv = process.env
): GatewayConfig {
  const config = loadConfig(GatewayConfigSchema, overrides, env)
  const internal = new Map(INTERNALS.map((name) => [origin(config[name]), name]))
  for (const name of UPSTREAMS) {
    const clash = internal.get(origin(config[name]))
    if (clash) throw new ConfigError(`invalid configuration: ${name} must not be an internal listener (it is ${clash})`)
  }
  return config
}
