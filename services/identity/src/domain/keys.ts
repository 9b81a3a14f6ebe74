import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Jwks } from '@roster/contracts'

export interface SigningKey {
  kid: string
  alg: 'EdDSA' | 'ES256'
  privatePem: string
  publicPem: string
  jwk: Jwks['keys'][number]
}

function thumbprint(jwk: Record<string, unknown>): string {
  // RFC 7638: the required members in lexicographic order.
  const members = jwk.kty === 'OKP' ? ['crv', 'kty', 'x'] : ['crv', 'kty', 'x', 'y']
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])))
  return createHash('sha256').update(canonical).digest('base64url')
}

export function signingKeyFrom(privateKey: KeyObject): SigningKey {
  const type = privateKey.asymmetricKeyType
  let alg: SigningKey['alg']
  if (type === 'ed25519') alg = 'EdDSA'
  else if (type === 'ec' && privateKey.asymmetricKeyDetails?.namedCurve === 'prime256v1') alg = 'ES256'
  else throw new Error(`the JWT key must be Ed25519 or P-256, not ${type}`)
  const publicKey = createPublicKey(privateKey)
  const exported = publicKey.export({ format: 'jwk' }) as Record<string, string>
  const kid = thumbprint(exported)
  return {
    kid,
    alg,
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    jwk: { ...exported, kty: exported.kty, kid, alg, use: 'sig' }
  }
}

/**
 * The signing key from configuration (PEM or a file holding it). Without one, an ephemeral key is
 * made: fine for one process, but replicas must share a configured key.
 */
export function loadSigningKey(pem: string, file: string): { key: SigningKey; ephemeral: boolean } {
  const source = pem || (file ? readFileSync(file, 'utf8') : '')
  if (source) return { key: signingKeyFrom(createPrivateKey(source)), ephemeral: false }
  return { key: signingKeyFrom(generateKeyPairSync('ed25519').privateKey), ephemeral: true }
}

export interface VerifyingKey {
  kid: string
  alg: 'EdDSA' | 'ES256'
  publicPem: string
  jwk: Jwks['keys'][number]
}

/**
 * Keys that signed tokens before a rotation: their public parts stay in the JWKS (and keep verifying)
 * until the tokens they signed have expired; nothing new is signed with them. Files of PEM keys,
 * private or public.
 */
export function loadPreviousKeys(files: string): VerifyingKey[] {
  return files
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean)
    .map((file) => {
      const pem = readFileSync(file, 'utf8')
      const publicKey = pem.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem)
      const type = publicKey.asymmetricKeyType
      const alg =
        type === 'ed25519'
          ? 'EdDSA'
          : type === 'ec' && publicKey.asymmetricKeyDetails?.namedCurve === 'prime256v1'
            ? 'ES256'
            : null
      if (!alg) throw new Error(`${file}: a JWT key must be Ed25519 or P-256, not ${type}`)
      const exported = publicKey.export({ format: 'jwk' }) as Record<string, string>
      const kid = thumbprint(exported)
      return {
        kid,
        alg,
        publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        jwk: { ...exported, kty: exported.kty, kid, alg, use: 'sig' }
      }
    })
}
