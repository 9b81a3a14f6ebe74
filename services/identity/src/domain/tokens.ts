import { randomUUID } from 'node:crypto'
import type { JWT } from '@fastify/jwt'
import type { JwtClaims, TokenType } from '@roster/contracts'
import type { SigningKey, VerifyingKey } from './keys.js'

export interface TokenSettings {
  accessLifetime: number
  refreshLifetime: number
}

/**
 * Signs simplejwt-compatible tokens through @fastify/jwt (`app.jwt`, set up by the kit with identity's
 * signing key), and verifies its refresh tokens.
 */
export class Tokens {
  private readonly keys: Map<string, VerifyingKey>

  /** Signs with `key` (through `jwt`); refresh tokens signed by `previous` keys (before a rotation) still verify. */
  constructor(
    private readonly jwt: JWT,
    readonly key: SigningKey,
    readonly settings: TokenSettings,
    previous: VerifyingKey[] = []
  ) {
    this.keys = new Map([key, ...previous].map((k) => [k.kid, k]))
  }

  issue(
    type: TokenType,
    userId: number,
    sid: string,
    extra: Partial<JwtClaims> = {}
  ): { token: string; jti: string; exp: number } {
    const iat = Math.floor(Date.now() / 1000)
    const exp = iat + (type === 'access' ? this.settings.accessLifetime : this.settings.refreshLifetime)
    const jti = randomUUID()
    const token = this.jwt.sign({ token_type: type, exp, iat, jti, user_id: userId, sid, ...extra })
    return { token, jti, exp }
  }

  /** The claims of a valid refresh token signed by one of the keys, or null. */
  verifyRefresh(token: string): JwtClaims | null {
    try {
      const { header } = this.jwt.decode<{ header: { kid?: string } }>(token, { complete: true }) ?? { header: {} }
      const key = header.kid === undefined ? undefined : this.keys.get(header.kid)
      if (!key) return null
      const claims = this.jwt.verify<JwtClaims>(token, { key: key.publicPem, algorithms: [key.alg], cache: false })
      return claims.token_type === 'refresh' && typeof claims.sid === 'string' ? claims : null
    } catch {
      return null
    }
  }
}
