import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import {
  JwksSchema,
  LoginBodySchema,
  RefreshBodySchema,
  RefreshResponseSchema,
  TokenPairSchema,
  publicPath,
  type TokenPair
} from '@roster/contracts'
import { ApiError, ThrottledError, message, transactional } from '@roster/service-kit'
import { LoginThrottle } from '../../repositories/throttle.js'
import * as users from '../../repositories/users.js'
import { clientOf } from '../../context.js'
import { identifierKey } from '../../domain/identifiers.js'

const tags = ['auth']
const errorRef = Type.Ref('Detail')
const fieldErrors = Type.Ref('FieldErrors')

export const authRoutes: FastifyPluginAsyncTypebox = async function authRoutes(app) {
  const { config, passwords, sessions } = app.identity
  const userRule = { max: config.LOGIN_MAX_FAILURES, windowSeconds: config.LOGIN_LOCKOUT_SECONDS }
  const ipRule = { max: config.LOGIN_IP_MAX_FAILURES, windowSeconds: config.LOGIN_IP_WINDOW_SECONDS }
  const throttle = new LoginThrottle()

  app.post(
    publicPath('login'),
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'log in',
        description:
          'Answers an access and a refresh token and starts a session. Wrong credentials and inactive accounts get the ' +
          'same 401. After 5 failures for one username within 15 minutes, or 20 failures from one address within a ' +
          'minute, attempts answer 429 with Retry-After; so do logins while the server is saturated with password checks.',
        security: [],
        body: LoginBodySchema,
        response: { 200: TokenPairSchema, 400: fieldErrors, 401: errorRef, 429: errorRef }
      }
    },
    async function login(request) {
      const { username, password } = request.body
      const client = clientOf(request)
      const em = request.em
      // Login compares usernames as uniqueness does (NFKC + case folding): `ADMIN` and `ａｄｍｉｎ` are `admin`.
      const userKey = `user:${identifierKey(username)}`
      const failed = (
        tem: EntityManager,
        userId: number | null,
        reason: 'bad_credentials' | 'inactive' | 'locked_out'
      ) =>
        app.outbox.emit(tem, 'identity.session.login_failed', {
          user_id: userId,
          username: username.slice(0, 150),
          reason,
          ip: client.ip,
          user_agent: client.userAgent
        })

      // 1. Reserve the attempt on both counters (one statement of its own). Attempts still being
      //    checked may fill a counter for a moment: wait for them, bounded, rather than refuse.
      const keys = [
        { key: `ip:${client.ip}`, ...ipRule },
        { key: userKey, ...userRule }
      ]
      const deadline = Date.now() + passwords.limits.maxWaitMs + 1000
      let reserved = await throttle.reserve(em, keys)
      for (let pause = 20; reserved.kind === 'busy' && Date.now() < deadline; pause = Math.min(pause * 2, 250)) {
        await new Promise((resolve) => setTimeout(resolve, pause))
        reserved = await throttle.reserve(em, keys)
      }
      if (reserved.kind !== 'admitted') {
        await transactional(em, (t) => failed(t, null, 'locked_out'))
        throw new ThrottledError(reserved.kind === 'locked' ? reserved.retryAfter : 1)
      }
      const { reservation } = reserved

      let outcome: TokenPair | null
      try {
        // 2. The password check, with no transaction and no connection held while bcrypt runs.
        const row = await users.findForLogin(em, identifierKey(username))
        const valid = await passwords.verify(password, row?.password ?? null)

        // 3. One short transaction under the user's row lock: the account as it is now (see Sessions).
        outcome = await transactional(em, async (t) => {
          const user = valid && row ? await users.lockForLogin(t, row.id, row.password) : null
          // A password changed (or a user deleted) since the check makes the check worthless.
          const reason =
            !user || user.password !== row!.password ? 'bad_credentials' : !user.isActive ? 'inactive' : null
          if (reason) {
            await failed(t, row?.id ?? null, reason)
            return null
          }
          return sessions.open(t, user!, client)
        })
      } catch (error) {
        // Not checked (bcrypt busy, the database failing): the attempt counts for nothing.
        await throttle
          .settle(em, reservation, 'none')
          .catch((e) => request.log.warn({ err: e }, 'could not release a login reservation'))
        throw error
      }
      // 4. The counters, once the outcome has committed (each key's row is locked by its own statement only,
      //    as they are shared by every attempt from the address). Until then the attempt counts as pending;
      //    should this fail, it does so until the key's window has passed.
      await throttle
        .settle(em, reservation, outcome ? 'success' : 'failure', userKey)
        .catch((e) => request.log.warn({ err: e }, 'could not settle a login reservation'))
      if (!outcome) throw new ApiError(401, 'login_failed')
      return outcome
    }
  )

  app.post(
    publicPath('refreshToken'),
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'exchange a refresh token for a new access token',
        description:
          'With ROSTER_ROTATE_REFRESH=true the answer carries a new refresh token too and the old one is revoked.',
        security: [],
        body: RefreshBodySchema,
        response: { 200: RefreshResponseSchema, 400: fieldErrors, 401: errorRef }
      }
    },
    function refresh(request, reply) {
      return sessions.refresh(request.em, request.body.refresh, reply)
    }
  )

  const logoutSchema = {
    tags,
    summary: 'log out: end the session for every service',
    response: { 200: errorRef, 401: errorRef }
  }
  async function logout(request: FastifyRequest, reply: FastifyReply) {
    const caller = request.caller!
    await sessions.end(request.em, caller.sid, caller.userId, clientOf(request), reply)
    return { detail: message('logged_out', request.lang) }
  }
  app.get(publicPath('logout'), { schema: logoutSchema }, logout)
  app.post(publicPath('logoutWithPost'), { schema: logoutSchema }, logout)

  app.get(
    publicPath('getJwks'),
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
