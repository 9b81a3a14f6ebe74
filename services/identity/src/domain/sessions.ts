import { randomUUID } from 'node:crypto'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { TokenPair } from '@roster/contracts'
import type { FastifyReply } from 'fastify'
import { REVOKED_SESSIONS_HEADER, TokenInvalidError, formatRevokedSessions, type ServiceApp } from '@roster/service-kit'
import { SessionEntity, UserEntity, type UserRow } from '../entities/index.js'
import type { Tokens } from './tokens.js'

export interface Client {
  ip: string
  userAgent: string
}

export interface Revoked {
  sid: string
  exp: number
  /** The outbox row that writes it to the revocation bucket. */
  eventId: string
}

/** The user's row as login and the session-ending changes see it, under the row lock. */
export interface LockedUser {
  id: number
  username: string
  password: string
  is_staff: boolean
  is_active: boolean
}

/** How long an answer that ended sessions waits for the revocation bucket to have them. */
const PUBLISH_WAIT_MS = 2000

/**
 * Sessions: every login starts one, tokens carry its id (`sid`), and ending one publishes the id to the
 * shared revocation bucket through the outbox, so every replica of every service refuses its tokens.
 *
 * A session that ended stays ended: session creation is serialized with the user's state on the user's
 * row lock (`lockUser`, `select … for update`). Login checks the password with no transaction and no
 * connection held, then in one short transaction locks the row, re-checks that the hash it checked is
 * still the row's, that the account is active, reads `is_staff`, and opens the session. Every change that
 * ends sessions (deactivation, a change of `is_staff` either way, a password change, deletion, logout)
 * takes the same lock first and revokes the user's sessions in its own transaction. So either the login
 * committed first and its session is revoked by the change, or the change committed first and the login
 * sees the new state (and refuses, or signs the new `is_staff`). Refresh takes the lock shared and
 * re-reads the session and the user the same way. (The alternative, a per-user cut-off time that every
 * verifier knows, would need a second replicated list and clock agreement between processes; the sid
 * list already exists and a row lock costs one statement.)
 *
 * The ending is visible before the change answers: the process remembers the sids, awaits the outbox's
 * after-commit write to the bucket (bounded, when NATS is up), and puts them in the internal response
 * header `x-roster-revoked-sessions` so the gateway carrying the answer refuses them from the moment
 * the client has it; other replicas learn them through the bucket's watch.
 */
export class Sessions {
  constructor(
    private readonly app: ServiceApp,
    private readonly tokens: Tokens,
    private readonly rotateRefresh: boolean
  ) {}

  /**
   * Starts a session inside the caller's transaction (the login's, so a login is one transaction): the
   * session row, the last-login time and the login event, in two statements.
   */
  async open(em: EntityManager, user: Pick<UserRow, 'id' | 'username' | 'isStaff'>, client: Client): Promise<TokenPair> {
    const sid = randomUUID()
    const refresh = this.tokens.issue('refresh', user.id, sid)
    const access = this.tokens.issue('access', user.id, sid, { is_staff: user.isStaff })
    await em.getConnection().execute(
      `with opened as (
         insert into session (id, user_id, refresh_jti, expires_at, ip, user_agent) values (?, ?, ?, to_timestamp(?), ?, ?)
         returning user_id
       )
       update app_user set last_login = now() where id = (select user_id from opened)`,
      [sid, user.id, refresh.jti, refresh.exp, client.ip, client.userAgent],
      'run',
      em.getTransactionContext()
    )
    await this.app.outbox.emit(em, 'identity.session.login', {
      session_id: sid,
      user_id: user.id,
      username: user.username,
      ip: client.ip,
      user_agent: client.userAgent
    })
    return { refresh: refresh.token, access: access.token }
  }

  async refresh(em: EntityManager, token: string): Promise<{ access: string; refresh?: string; revoked?: Revoked[] }> {
    const claims = this.tokens.verifyRefresh(token)
    if (!claims || this.app.revocations.isRevoked(claims.sid)) throw new TokenInvalidError('refresh_not_valid')
    const outcome = await em.transactional(async (tem) => {
      const t = tem as EntityManager
      // Shared: refreshes do not wait for one another, an ending change waits for them (and they for it).
      const user = await this.lockUser(t, claims.user_id, 'share')
      if (!user || !user.is_active) return { invalid: true as const }
      const session = await t.findOne(SessionEntity, { id: claims.sid })
      if (!session || session.revokedAt || session.user !== claims.user_id || session.expiresAt < new Date()) return { invalid: true as const }
      if (this.rotateRefresh && session.refreshJti !== claims.jti) {
        // A refresh token that was already exchanged is being reused: the session is compromised.
        return { invalid: true as const, revoked: await this.revoke(t, { userId: user.id, only: session.id }) }
      }
      const access = this.tokens.issue('access', user.id, session.id, { is_staff: user.is_staff })
      if (!this.rotateRefresh) return { tokens: { access: access.token } }
      const refresh = this.tokens.issue('refresh', user.id, session.id)
      const updated = await t.nativeUpdate(
        SessionEntity,
        { id: session.id, refreshJti: claims.jti, revokedAt: null },
        { refreshJti: refresh.jti, expiresAt: new Date(refresh.exp * 1000) }
      )
      if (updated === 0) return { invalid: true as const }
      return { tokens: { access: access.token, refresh: refresh.token } }
    })
    if ('invalid' in outcome) {
      const error = new TokenInvalidError('refresh_not_valid')
      if (outcome.revoked) Object.assign(error, { revoked: outcome.revoked })
      throw error
    }
    return outcome.tokens
  }

  /**
   * The user's row, locked until the caller's transaction ends (`update`: login and every change that
   * ends sessions; `share`: refresh). Null when the user does not exist (any more).
   */
  async lockUser(em: EntityManager, userId: number, mode: 'update' | 'share' = 'update'): Promise<LockedUser | null> {
    const [row] = await em
      .getConnection()
      .execute<LockedUser[]>(
        `select id, username, password, is_staff, is_active from app_user where id = ? for ${mode === 'share' ? 'share' : 'update'}`,
        [userId],
        'all',
        em.getTransactionContext()
      )
    return row ?? null
  }

  /** Logout: ends the caller's session and records who ended it. */
  async end(em: EntityManager, sid: string, userId: number, client: Client): Promise<Revoked[]> {
    return em.transactional(async (tem) => {
      await this.lockUser(tem as EntityManager, userId)
      const ended = await this.revoke(tem as EntityManager, { userId, only: sid })
      await this.app.outbox.emit(tem as EntityManager, 'identity.session.logout', {
        session_id: sid,
        user_id: userId,
        operator: userId,
        ip: client.ip,
        user_agent: client.userAgent
      })
      return ended
    })
  }

  /**
   * Revokes sessions of a user inside the caller's transaction (all, all but one, or only one); call
   * `afterCommit` with the result once it has committed.
   */
  async revoke(em: EntityManager, target: { userId: number; except?: string; only?: string }): Promise<Revoked[]> {
    const conditions = ['user_id = ?', 'revoked_at is null']
    const params: unknown[] = [target.userId]
    if (target.except) {
      conditions.push('id <> ?')
      params.push(target.except)
    }
    if (target.only) {
      conditions.push('id = ?')
      params.push(target.only)
    }
    const rows = await em
      .getConnection()
      .execute<{ id: string; exp: number }[]>(
        `update session set revoked_at = now() where ${conditions.join(' and ')}
         returning id, extract(epoch from expires_at)::bigint as exp`,
        params,
        'all',
        em.getTransactionContext()
      )
    const revoked: Revoked[] = []
    for (const r of rows) {
      const exp = Number(r.exp)
      revoked.push({ sid: r.id, exp, eventId: await this.app.outbox.enqueue(em, 'revocation', r.id, { exp }) })
    }
    return revoked
  }

  /**
   * Call once the transaction that revoked has committed, before answering: refused here at once, named
   * to the gateway carrying the answer (`reply`), and written to the bucket for every other process
   * (awaited, bounded, when NATS is up; otherwise the relay writes it once NATS is back).
   */
  async afterCommit(revoked: Revoked[], reply?: FastifyReply): Promise<void> {
    if (revoked.length === 0) return
    for (const r of revoked) this.app.revocations.remember(r.sid, r.exp)
    if (reply) reply.header(REVOKED_SESSIONS_HEADER, formatRevokedSessions(revoked))
    if (!this.app.nats.connected()) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.app.outbox.settled(revoked.map((r) => r.eventId)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, PUBLISH_WAIT_MS)))
    ])
    clearTimeout(timer)
  }
}
