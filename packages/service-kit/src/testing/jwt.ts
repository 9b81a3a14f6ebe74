import { createHmac, createPrivateKey, sign, type KeyObject } from 'node:crypto'

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/**
 * A JWT with exactly the header and claims given, for tests of what verification accepts and refuses:
 * signed with an Ed25519 or P-256 private key (PEM or KeyObject, as `alg` EdDSA / ES256 expect), with an
 * HMAC secret (`{ hmac }`, for HS256), or with an empty signature when `key` is omitted (`alg: none`).
 */
export function signToken(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  key?: string | KeyObject | { hmac: string }
): string {
  const input = `${b64(header)}.${b64(claims)}`
  if (key === undefined) return `${input}.`
  if (typeof key === 'object' && 'hmac' in key) {
    return `${input}.${createHmac('sha256', key.hmac).update(input).digest('base64url')}`
  }
  const privateKey = typeof key === 'string' ? createPrivateKey(key) : key
  // JWS wants ECDSA signatures as r||s (IEEE P1363), not DER; Ed25519 signatures have one form.
  const signature = sign(privateKey.asymmetricKeyType === 'ec' ? 'sha256' : null, Buffer.from(input), {
    key: privateKey,
    dsaEncoding: 'ieee-p1363'
  })
  return `${input}.${signature.toString('base64url')}`
}
