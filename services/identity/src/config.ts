import { Type, type Static } from '@sinclair/typebox'
import { InternalUrlProperties, loadConfig, serviceConfigSchema } from '@roster/service-kit'

export const IdentityConfigSchema = serviceConfigSchema({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3001 }),
  INTERNAL_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3101 }),
  DIRECTORY_INTERNAL_URL: Type.String({
    ...InternalUrlProperties.DIRECTORY_INTERNAL_URL,
    description: "directory's internal listener, for read-through on a replica miss (empty: none)"
  }),
  ROSTER_JWT_PRIVATE_KEY: Type.String({ default: '', description: 'PEM (PKCS8) Ed25519 or P-256 private key' }),
  ROSTER_JWT_PRIVATE_KEY_FILE: Type.String({ default: '' }),
  ROSTER_JWT_PREVIOUS_KEY_FILES: Type.String({
    default: '',
    description:
      'comma-separated PEM files of keys replaced by a rotation: still served in the JWKS and verified, never used to sign'
  }),
  ROSTER_ACCESS_TOKEN_LIFETIME: Type.Integer({ minimum: 10, default: 3600, description: 'seconds' }),
  ROSTER_REFRESH_TOKEN_LIFETIME: Type.Integer({ minimum: 60, default: 7 * 24 * 3600, description: 'seconds' }),
  ROSTER_ROTATE_REFRESH: Type.Boolean({ default: false }),
  ROSTER_STRICT_ID_CHECKSUM: Type.Boolean({ default: false }),
  ROSTER_ADMIN_USERNAME: Type.String({ default: '' }),
  ROSTER_ADMIN_PASSWORD: Type.String({ default: '' }),
  BCRYPT_COST: Type.Integer({ minimum: 4, maximum: 15, default: 10 }),
  PASSWORD_WORKERS: Type.Integer({
    minimum: 0,
    maximum: 1024,
    default: 0,
    description:
      'bcrypt operations at once; 0: the size of libuv thread pool (UV_THREADPOOL_SIZE, default 4), at most the number of cores'
  }),
  PASSWORD_QUEUE_WAIT_MS: Type.Integer({
    minimum: 0,
    default: 10000,
    description: 'how long a login, registration or password change waits for a bcrypt slot before answering 429'
  }),
  LOGIN_MAX_FAILURES: Type.Integer({ minimum: 1, default: 5 }),
  LOGIN_LOCKOUT_SECONDS: Type.Integer({ minimum: 1, default: 900 }),
  LOGIN_IP_MAX_FAILURES: Type.Integer({ minimum: 1, default: 20 }),
  LOGIN_IP_WINDOW_SECONDS: Type.Integer({ minimum: 1, default: 60 })
})
export type IdentityConfig = Static<typeof IdentityConfigSchema>

export function readConfig(overrides: Partial<IdentityConfig> = {}): IdentityConfig {
  return loadConfig(IdentityConfigSchema, overrides)
}
