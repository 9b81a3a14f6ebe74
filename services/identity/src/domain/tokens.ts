import { randomUUID } from 'node:crypto'
import { createSigner, createVerifier } from 'fast-jwt'
import type { JwtClaims, TokenType } from '@roster/contracts'
import type { SigningKey, VerifyingKey } from './keys.js'

export interface TokenSettings {
  accessLifetime: number
  refreshLifetime: number
}

/** Signs simplejwt-compatible tokens with the service's asymmetric key, and verifies its refresh tokens. */
export class Tokens {
  private readonly sign: (payload: Record<string, unknown>) => string
  private readonly verifiers: Map<string, (token: string) => JwtClaims>

  /** Signs with `key`; refresh tokens signed by `previous` keys (before a rotation) still verify. */
  constructor(
    readonly key: SigningKey,
    readonly settings: TokenSettings,
    previous: VerifyingKey[] = []
  ) {
    this.sign = createSigner({ key: key.privatePem, algorithm: key.alg, kid: key.kid }) as any
    this.verifiers = new Map(
      [key, ...previous].map((k) => [k.kid, createVerifier({ key: k.publicPem, algorithms: [k.alg], cache: false }) as any])
    )
  }

  issue(type: TokenType, userId: number, sid: string, extra: Partial<JwtClaims> = {}): { token: string; jti: string; exp: number } {
    const iat = Math.floor(Date.now() / 1000)
    const exp = iat + (type === 'access' ? this.settings.accessLifetime : this.settings.refreshLifetime)
    const jti = randomUUID()
    const token = this.sign({ token_type: type, exp, iat, jti, user_id: userId, sid, ...extra })
    return { token, jti, exp }
  }

  /** The claims of a valid refresh token signed by this key, or null. */
  verifyRefresh(token: string): JwtClaims | null {
    try {
      const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString())
      const verify = this.verifiers.get(header.kid)
      if (!verify) return null
      const claims = verify(token)
      return claims.token_type === 'refresh' && typeof claims.sid === 'string' ? claims : null
    } catch {
      return null
    }
  }
}
