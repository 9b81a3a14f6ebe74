import envSchema from 'env-schema'
import { Type, type Static, type TObject, type TProperties } from '@sinclair/typebox'

/** Environment every service reads; a service extends it with its own keys via `serviceConfigSchema`. */
export const BaseConfigProperties = {
  HOST: Type.String({ default: '127.0.0.1' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  INTERNAL_PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 3100,
    description: "the internal listener: /internal/*, /metrics, /ready, the service's own /docs; never exposed"
  }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' }
  ),
  DATABASE_URL: Type.String({ default: 'postgres://postgres@127.0.0.1:5432/roster' }),
  DB_SCHEMA: Type.String({
    pattern: '^([a-z_][a-z0-9_]{0,62})?$',
    default: '',
    description: 'empty: the service name'
  }),
  DB_POOL_MAX: Type.Integer({ minimum: 1, maximum: 200, default: 10 }),
  MIGRATE_ON_START: Type.Boolean({
    default: true,
    description:
      'apply pending migrations at start-up; false where a migration Job runs them once per rollout (Kubernetes)'
  }),
  NATS_URL: Type.String({ default: 'nats://127.0.0.1:4222' }),
  NATS_PREFIX: Type.String({ pattern: '^([A-Za-z0-9_-]{1,32})?$', default: '' }),
  ROSTER_TIME_ZONE: Type.String({ default: 'Asia/Shanghai' }),
  IDENTITY_URL: Type.String({ default: 'http://127.0.0.1:3001' }),
  REVOCATION_TTL_SECONDS: Type.Integer({ minimum: 60, default: 7 * 24 * 3600 }),
  OUTBOX_POLL_MS: Type.Integer({ minimum: 10, maximum: 60000, default: 1000 }),
  CONSUMER_MAX_DELIVER: Type.Integer({ minimum: 1, maximum: 100, default: 5 }),
  HEAP_GROWING_PERCENT: Type.Integer({
    minimum: 0,
    maximum: 300,
    default: 50,
    description:
      "how far V8 lets the old generation grow past what survived its last full collection, in percent (V8's " +
      '--heap-growing-percent); 0 leaves it to V8, which lets it grow up to 4 times when allocation is fast'
  }),
  IDLE_COLLECT_SECONDS: Type.Integer({
    minimum: 0,
    maximum: 86400,
    default: 10,
    description:
      'after this many seconds under 5 % of a core, one full garbage collection gives back the heap a load left ' +
      '(V8 keeps it otherwise); again only once the heap has grown by 8 MB; 0: never'
  }),
  TRUST_PROXY: Type.String({
    default: '127.0.0.1/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16',
    description: 'addresses whose X-Forwarded-For is believed (the gateway)'
  })
}

/** Internal base URLs of the services (their INTERNAL_PORT): read-through, docs merge. Never the gateway's upstreams. */
export const InternalUrlProperties = {
  IDENTITY_INTERNAL_URL: Type.String({ default: 'http://127.0.0.1:3101', description: "identity's internal listener" }),
  DIRECTORY_INTERNAL_URL: Type.String({
    default: 'http://127.0.0.1:3102',
    description: "directory's internal listener"
  }),
  AUDIT_INTERNAL_URL: Type.String({ default: 'http://127.0.0.1:3103', description: "audit's internal listener" })
}

export const BaseConfigSchema = Type.Object(BaseConfigProperties)
export type BaseConfig = Static<typeof BaseConfigSchema>

export function serviceConfigSchema<P extends TProperties>(properties: P) {
  return Type.Object({ ...BaseConfigProperties, ...properties })
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * Reads the environment once, validating and coercing it; `overrides` (tests) win over the environment.
 * A bad value stops start-up with a message naming the variable.
 */
export function loadConfig<T extends TObject>(
  schema: T,
  overrides: Partial<Static<T>> = {},
  env: NodeJS.ProcessEnv = process.env
): Static<T> {
  const data: Record<string, unknown> = {}
  for (const key of Object.keys(schema.properties)) {
    const value = env[key]
    // An empty value means "unset" for numbers and booleans, and is a value of its own for text (`DIRECTORY_INTERNAL_URL=` is no read-through).
    if (value === undefined || (value === '' && (schema.properties[key] as { type?: string }).type !== 'string'))
      continue
    data[key] = value
  }
  Object.assign(data, overrides)
  let config: Static<T>
  try {
    // `env: false`: env-schema would otherwise merge all of process.env over what was read from `env` here.
    config = envSchema<Static<T>>({ schema, data, dotenv: false, env: false })
  } catch (error) {
    throw new ConfigError(`invalid configuration: ${(error as Error).message}`)
  }
  const ports = config as { PORT?: number; INTERNAL_PORT?: number }
  if (ports.PORT !== undefined && ports.PORT !== 0 && ports.PORT === ports.INTERNAL_PORT) {
    throw new ConfigError(`invalid configuration: INTERNAL_PORT must differ from PORT (both ${ports.PORT})`)
  }
  return config
}
