import fp from 'fastify-plugin'
import fastifyJwt, { type TokenOrHeader } from '@fastify/jwt'
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify'
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

const claimsCheck = TypeCompiler.Compile(JwtClaimsSchema)

/** The key identity signs with (only identity has one); other services and the gateway only verify. */
export interface SigningKeyOptions {
  privatePem: string
  alg: (typeof ALLOWED_ALGORITHMS)[number]
  kid: string
}

/**
 * The public key for a token, chosen by its `kid` (the secret callback of @fastify/jwt). Algorithms
 * outside the allow-list (`none`, HMAC, RSA) are refused before any lookup; a key once found is kept,
 * and an unknown `kid` is looked up at most once every 30 seconds so forged headers cannot flood the
 * JWKS endpoint.
 */
export function keyByKid(resolveKey: KeyResolver): (request: FastifyRequest, token: TokenOrHeader) => Promise<string> {
  const keys = new Map<string, Promise<string>>()
  const misses = new Map<string, number>()
  return async (_request, token) => {
    const header = 'header' in token ? token.header : token
    const alg = header.alg
    if (!alg || !(ALLOWED_ALGORITHMS as readonly string[]).includes(alg)) throw new Error('algorithm not allowed')
    const id = `${alg}:${header.kid ?? ''}`
    let key = keys.get(id)
    if (!key) {
      if ((misses.get(id) ?? 0) > Date.now()) throw new Error('unknown kid (looked up recently)')
      key = resolveKey(header)
      keys.set(id, key)
      key.catch(() => {
        keys.delete(id)
        if (misses.size > 1000) misses.clear()
        misses.set(id, Date.now() + 30_000)
      })
    }
    return key
  }
}

/** The token of an `Authorization: Bearer <token>` header; any other non-blank header is an invalid token. */
function bearerToken(request: FastifyRequest): string {
  const [scheme, token, extra] = (request.headers.authorization ?? '').trim().split(/\s+/)
  if (scheme?.toLowerCase() !== 'bearer' || !token || extra) throw new TokenInvalidError()
  return token
}

/**
 * Verifies bearer tokens locally with @fastify/jwt (asymmetric keys only: `alg: none`, HMAC, unknown `kid`,
 * tampering and refresh tokens are refused), checks the session against the revocation list in its
 * `trusted` hook, and enforces each route's `config.access`. An invalid token is refused even on a public
 * route, as DRF does. Verified tokens are cached per key until they expire (the gateway and then the
 * service verify each one), so a repeated token costs a map lookup by its text and the revocation check
 * (`VerifiedTokens`), not a signature check.
 * With `signingKey` (identity), `app.jwt.sign` signs tokens with it.
 */
export const authPlugin = fp(
  async function auth(app: FastifyInstance, options: { resolveKey: KeyResolver; signingKey?: SigningKeyOptions }) {
    const signing = options.signingKey
    await app.register(fastifyJwt, {
      secret: { public: keyByKid(options.resolveKey), private: signing?.privatePem },
      sign: signing ? { algorithm: signing.alg, kid: signing.kid } : {},
      decode: { complete: true },
      verify: { algorithms: [...ALLOWED_ALGORITHMS], cache: 10_000, cacheTTL: 600_000, extractToken: bearerToken },
      trusted: (_request, claims) =>
        claimsCheck.Check(claims) && claims.token_type === 'access' && !app.revocations.isRevoked(claims.sid)
    })
    app.decorateRequest('caller', null)
    const verified = new VerifiedTokens()

    /** The refusal of the route's `config.access` for the request's caller, or undefined. */
    const refusal = (request: FastifyRequest): FastifyError | undefined => {
      const access: Access =
        request.routeOptions.config?.access ?? (request.routeOptions.url?.startsWith('/api/') ? 'user' : 'public')
      if (access === 'public') return undefined
      if (!request.caller) return new NotAuthenticatedError() as unknown as FastifyError
      if (access === 'admin' && !request.caller.isStaff) return new PermissionDeniedError() as unknown as FastifyError
      return undefined
    }
    // Callback style: a request with no token, or with a token verified before, is decided with no promise.
    app.addHook('onRequest', function authenticate(request, _reply, done) {
      if (!request.headers.authorization?.trim()) return done(refusal(request))
      let token: string
      let known: Caller | undefined
      try {
        token = bearerToken(request)
        known = knownCaller(request, token, verified, app)
      } catch (error) {
        return done(error as FastifyError)
      }
      if (known) {
        request.caller = known
        return done(refusal(request))
      }
      verifiedCaller(request, token, verified).then(
        (caller) => {
          request.caller = caller
          done(refusal(request))
        },
        (error: FastifyError) => done(error)
      )
    })
  },
  { name: 'roster-auth', dependencies: ['roster-revocation'] }
)

/**
 * Callers of tokens that verified, by the token's exact text, until the token expires (at most
 * `VERIFIED_TTL_MS`): the gateway and then the service see the same token on every request of a client, and
 * a token byte for byte equal to one whose signature and claims were checked checks the same. A hit costs a
 * map lookup (no decoding, hashing, key lookup or callback chain); the session is still checked against
 * the revocation list every time. The oldest entry goes when the map is full.
 */
class VerifiedTokens {
  private readonly entries = new Map<string, { caller: Caller; until: number }>()

  constructor(private readonly max = 10_000) {}

  get(token: string, now: number): Caller | undefined {
    const entry = this.entries.get(token)
    if (!entry) return undefined
    if (entry.until > now) return entry.caller
    this.entries.delete(token)
    return undefined
  }

  set(token: string, caller: Caller, now: number): void {
    const until = Math.min(caller.claims.exp * 1000, now + VERIFIED_TTL_MS)
    if (until <= now) return
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!)
    this.entries.set(token, { caller, until })
  }
}

const VERIFIED_TTL_MS = 600_000

/** The caller of a token verified before, or undefined; a revoked session is refused. */
function knownCaller(
  request: FastifyRequest,
  token: string,
  verified: VerifiedTokens,
  app: FastifyInstance
): Caller | undefined {
  const known = verified.get(token, Date.now())
  if (known && app.revocations.isRevoked(known.sid)) {
    request.log.info({ reason: 'session revoked' }, 'token refused')
    throw new TokenInvalidError()
  }
  return known
}

/** Every refusal (bad signature, expiry, unknown key, wrong claims, revoked session) is DRF's `token_not_valid`. */
async function verifiedCaller(request: FastifyRequest, token: string, verified: VerifiedTokens): Promise<Caller> {
  let claims: JwtClaims
  try {
    claims = await request.jwtVerify<JwtClaims>()
  } catch (error) {
    if (error instanceof TokenInvalidError) throw error
    request.log.info({ reason: (error as Error).message }, 'token refused')
    throw new TokenInvalidError()
  }
  const caller = { userId: claims.user_id, sid: claims.sid, isStaff: claims.is_staff === true, claims }
  verified.set(token, caller, Date.now())
  return caller
}

/** Admins, or the user the record belongs to; anyone else gets 403 whether or not it exists. */
export function assertSelfOrAdmin(request: FastifyRequest, userId: number): Caller {
  const caller = request.caller
  if (!caller) throw new NotAuthenticatedError()
  if (!caller.isStaff && caller.userId !== userId) throw new PermissionDeniedError()
  return caller
}
