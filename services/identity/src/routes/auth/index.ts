import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { JwksSchema, LoginBodySchema, RefreshBodySchema, RefreshResponseSchema, TokenPairSchema } from '@roster/contracts'
import { ApiError, ThrottledError, message } from '@roster/service-kit'
import { LoginThrottle } from '../../domain/throttle.js'
import { clientOf } from '../../context.js'
import { identifierKey } from '../../domain/identifiers.js'

const tags = ['auth']
const errorRef = Type.Ref('Detail')
const fieldErrors = Type.Ref('FieldErrors')

export const authRoutes: FastifyPluginAsyncTypebox = async function authRoutes(app) {
  const { config, passwords, sessions } = app.identity
  const userRule = { max: config.LOGIN_MAX_FAILURES, windowSeconds: config.LOGIN_LOCKOUT_SECONDS }
  const ipRule = { max: config.LOGIN_IP_MAX_FAILURES, windowSeconds: config.LOGIN_IP_WINDOW_SECONDS }

  app.post(
    '/api/auth/',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'log in',
        description:
          'Answers an access and a refresh token and starts a session. Wrong credentials and inactive accounts get the ' +
          'same 401. After 5 failures for one username within 15 minutes, or 20 failures from one address within a ' +
          'minute, attempts answer 429 with Retry-After.',
        security: [],
        body: LoginBodySchema,
        response: { 200: TokenPairSchema, 400: fieldErrors, 401: errorRef, 429: errorRef }
      }
    },
    async function login(request) {
      const { username, password } = request.body
      const client = clientOf(request)
      const throttle = new LoginThrottle()
      const ipKey = `ip:${client.ip}`
      // Login compares usernames as uniqueness does (NFKC + case folding): `ADMIN` and `ａｄｍｉｎ` are `admin`.
      const userKey = `user:${identifierKey(username)}`

      const failed = async (em: EntityManager, userId: number | null, reason: 'bad_credentials' | 'inactive' | 'locked_out') =>
        app.outbox.emit(em, 'identity.session.login_failed', {
          user_id: userId,
          username: username.slice(0, 150),
          reason,
          ip: client.ip,
          user_agent: client.userAgent
        })

      const outcome = await request.em.transactional(async (tem) => {
        const em = tem as EntityManager
        const [row] = await throttle.lock<{ id: number; username: string; password: string; is_staff: boolean; is_active: boolean }>(em, userKey, {
          sql: 'select id, username, password, is_staff, is_active from app_user where username_key = ?',
          params: [identifierKey(username)]
        })
        const limits = await throttle.check(em, userKey, userRule, ipKey, ipRule)
        const blocked = [limits.ip.failures >= ipRule.max && limits.ip, limits.user.failures >= userRule.max && limits.user].filter(Boolean)
        if (blocked.length > 0) {
          await failed(em, null, 'locked_out')
          return { kind: 'locked' as const, retryAfter: Math.max(...blocked.map((b) => (b as { retryAfter: number }).retryAfter)) }
        }
        const valid = await passwords.verify(password, row?.password ?? null)
        if (!row || !valid || !row.is_active) {
          await throttle.fail(em, userKey, userRule)
          await throttle.fail(em, ipKey, ipRule)
          await failed(em, row?.id ?? null, row && valid ? 'inactive' : 'bad_credentials')
          return { kind: 'failed' as const }
        }
        if (limits.user.failures > 0) await throttle.clear(em, userKey)
        const tokens = await sessions.open(em, { id: row.id, username: row.username, isStaff: row.is_staff }, client)
        return { kind: 'ok' as const, tokens }
      })
      if (outcome.kind === 'locked') throw new ThrottledError(outcome.retryAfter)
      if (outcome.kind === 'failed') throw new ApiError(401, 'login_failed')
      return outcome.tokens
    }
  )

  app.post(
    '/api/auth/refresh/',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'exchange a refresh token for a new access token',
        description: 'With ROSTER_ROTATE_REFRESH=true the answer carries a new refresh token too and the old one is revoked.',
        security: [],
        body: RefreshBodySchema,
        response: { 200: RefreshResponseSchema, 400: fieldErrors, 401: errorRef }
      }
    },
    async function refresh(request) {
      return sessions.refresh(request.em, request.body.refresh)
    }
  )

  const logoutSchema = {
    tags,
    summary: 'log out: end the session for every service',
    response: { 200: errorRef, 401: errorRef }
  }
  async function logout(request: FastifyRequest) {
    const caller = request.caller!
    await sessions.end(request.em, caller.sid, caller.userId, clientOf(request))
    return { detail: message('logged_out', request.lang) }
  }
  app.get('/api/auth/logout/', { schema: logoutSchema }, logout)
  app.post('/api/auth/logout/', { schema: logoutSchema }, logout)

  app.get(
    '/api/auth/jwks/',
    {
      config: { access: 'public' },
      schema: { tags, summary: 'public keys that verify tokens (JWKS)', security: [], response: { 200: JwksSchema } }
    },
    async function jwks(_request, reply) {
      reply.header('cache-control', 'public, max-age=300')
      return app.identity.jwks
    }
  )
}
