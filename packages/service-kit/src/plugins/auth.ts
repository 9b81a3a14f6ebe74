import fp from 'fastify-plugin'
import { createDecoder, createVerifier } from 'fast-jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { JwtClaimsSchema, type JwtClaims } from '@roster/contracts'
import { NotAuthenticatedError, PermissionDeniedError, TokenInvalidError } from '../errors.js'

export const ALLOWED_ALGORITHMS = ['EdDSA', 'ES256'] as const

export type Access = 'public' | 'user' | 'admin'

export interface Caller {
  userId: number
  sid: string
  isStaff: boolean
  claims: JwtClaims
}

/** Finds the public key (PEM) for a token header; throws when the `kid` is unknown. */
export type KeyResolver = (header: { kid?: string; alg?: string }) => Promise<string>

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; `/api` routes default to `user`, others to `public`. */
    access?: Access
  }
  interface FastifyRequest {
    caller: Caller | null
  }
}

type Verify = (token: string) => Promise<JwtClaims>

const claimsCheck = TypeCompiler.Compile(JwtClaimsSchema)

const decodeComplete = createDecoder({ complete: true }) as (token: string) => { header: { alg?: string; kid?: string } }

/**
 * Token verification with fast-jwt (the engine of @fastify/jwt, used directly: with keys chosen by `kid`
 * from a JWKS, @fastify/jwt builds a new verifier, parsing the key, on every request). One verifier per
 * key, each caching the tokens it has verified until they expire; an unknown `kid` is looked up at most
 * once every 30 seconds so forged headers cannot flood the JWKS endpoint.
 */
export function tokenVerifier(resolveKey: KeyResolver): (token: string) => Promise<JwtClaims> {
  const verifiers = new Map<string, Promise<Verify>>()
  const misses = new Map<string, number>()
  return async (token) => {
    const { header } = decodeComplete(token)
    const alg = header.alg
    if (!alg || !(ALLOWED_ALGORITHMS as readonly string[]).includes(alg)) throw new Error('algorithm not allowed')
    const id = `${alg}:${header.kid ?? ''}`
    let verifier = verifiers.get(id)
    if (!verifier) {
      if ((misses.get(id) ?? 0) > Date.now()) throw new Error('unknown kid')
      verifier = resolveKey(header).then(
        (key) => createVerifier({ key, algorithms: [alg as 'EdDSA'], cache: 10_000, cacheTTL: 600_000 }) as unknown as Verify
      )
      verifiers.set(id, verifier)
      verifier.catch(() => {
        verifiers.delete(id)
        if (misses.size > 1000) misses.clear()
        misses.set(id, Date.now() + 30_000)
      })
    }
    return (await verifier)(token)
  }
}

/**
 * Verifies bearer tokens locally (asymmetric keys only: `alg: none`, HMAC, unknown `kid`, tampering and
 * refresh tokens are refused), checks the session against the revocation list, and enforces each
 * route's `config.access`. An invalid token is refused even on a public route, as DRF does.
 */
export const authPlugin = fp(
  async function auth(app: FastifyInstance, options: { resolveKey: KeyResolver }) {
    const verify = tokenVerifier(options.resolveKey)
    app.decorateRequest('caller', null)

    app.addHook('onRequest', async function authenticate(request) {
      const header = request.headers.authorization
      if (header !== undefined) request.caller = await verifyAccess(app, request, header, verify)
      const access: Access =
        request.routeOptions.config?.access ?? (request.routeOptions.url?.startsWith('/api/') ? 'user' : 'public')
      if (access === 'public') return
      if (!request.caller) throw new NotAuthenticatedError()
      if (access === 'admin' && !request.caller.isStaff) throw new PermissionDeniedError()
    })
  },
  { name: 'roster-auth', dependencies: ['roster-revocation'] }
)

async function verifyAccess(app: FastifyInstance, request: FastifyRequest, header: string, verify: (token: string) => Promise<JwtClaims>): Promise<Caller | null> {
  const [scheme, token, extra] = header.trim().split(/\s+/)
  if (!scheme) return null
  if (scheme.toLowerCase() !== 'bearer' || !token || extra) throw new TokenInvalidError()
  let claims: JwtClaims
  try {
    claims = await verify(token)
  } catch (error) {
    request.log.info({ reason: (error as Error).message }, 'token refused')
    throw new TokenInvalidError()
  }
  if (!claimsCheck.Check(claims) || claims.token_type !== 'access') throw new TokenInvalidError()
  if (app.revocations.isRevoked(claims.sid)) throw new TokenInvalidError()
  return { userId: claims.user_id, sid: claims.sid, isStaff: claims.is_staff === true, claims }
}

/** Admins, or the user the record belongs to; anyone else gets 403 whether or not it exists. */
export function assertSelfOrAdmin(request: FastifyRequest, userId: number): Caller {
  const caller = request.caller
  if (!caller) throw new NotAuthenticatedError()
  if (!caller.isStaff && caller.userId !== userId) throw new PermissionDeniedError()
  return caller
}
