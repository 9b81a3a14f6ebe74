import { createPublicKey, type JsonWebKey } from 'node:crypto'
import buildGetJwks from 'get-jwks'
import type { KeyResolver } from './plugins/auth.js'

/** Resolves token keys from the identity service's JWKS, cached by `kid` and fetched again on a miss. */
export function jwksKeyResolver(identityUrl: string, jwksPath = '/api/auth/jwks/'): KeyResolver {
  const getJwks = buildGetJwks({ jwksPath, providerDiscovery: false, max: 32, ttl: 10 * 60 * 1000 })
  const domain = identityUrl.replace(/\/+$/, '')
  const pems = new Map<string, string>()
  return async ({ kid, alg }) => {
    if (!kid || !alg) throw new Error('token has no kid')
    const known = pems.get(`${alg}:${kid}`)
    if (known) return known
    // get-jwks converts only RSA and EC keys to PEM; node:crypto handles Ed25519 (OKP) as well.
    const jwk = await getJwks.getJwk({ domain, kid, alg })
    const pem = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })
      .export({ type: 'spki', format: 'pem' })
      .toString()
    pems.set(`${alg}:${kid}`, pem)
    return pem
  }
}

/** Resolves token keys from PEMs held in memory (the identity service's own key ring). */
export function staticKeyResolver(publicKeys: Map<string, { pem: string; alg: string }>): KeyResolver {
  return async ({ kid, alg }) => {
    const key = kid ? publicKeys.get(kid) : undefined
    if (!key || key.alg !== alg) throw new Error('unknown kid')
    return key.pem
  }
}
