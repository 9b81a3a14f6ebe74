import { randomUUID } from 'node:crypto'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { TokenPair } from '@roster/contracts'
import { TokenInvalidError, type ServiceApp } from '@roster/service-kit'
import { SessionEntity, UserEntity, type UserRow } from '../entities/index.js'
import type { Tokens } from './tokens.js'

export interface Client {
  ip: string
  userAgent: string
}

export interface Revoked {
  sid: string
  exp: number
}

/**
 * Sessions: every login starts one, tokens carry its id (`sid`), and ending one publishes the id to the
 * shared revocation bucket through the outbox, so every replica of every service refuses its tokens.
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

  async refresh(em: EntityManager, token: string): Promise<{ access: string; refresh?: string }> {
    const claims = this.tokens.verifyRefresh(token)
    if (!claims || this.app.revocations.isRevoked(claims.sid)) throw new TokenInvalidError('refresh_not_valid')
    const session = await em.findOne(SessionEntity, { id: claims.sid })
    if (!session || session.revokedAt || session.user !== claims.user_id || session.expiresAt < new Date()) {
      throw new TokenInvalidError('refresh_not_valid')
    }
    const user = await em.findOne(UserEntity, { id: claims.user_id })
    if (!user || !user.isActive) throw new TokenInvalidError('refresh_not_valid')
    if (this.rotateRefresh && session.refreshJti !== claims.jti) {
      // A refresh token that was already exchanged is being reused: the session is compromised.
      await this.revokeAndPublish(em, { userId: user.id, only: session.id })
      throw new TokenInvalidError('refresh_not_valid')
    }
    const access = this.tokens.issue('access', user.id, session.id, { is_staff: user.isStaff })
    if (!this.rotateRefresh) return { access: access.token }
    const refresh = this.tokens.issue('refresh', user.id, session.id)
    const updated = await em.nativeUpdate(
      SessionEntity,
      { id: session.id, refreshJti: claims.jti, revokedAt: null },
      { refreshJti: refresh.jti, expiresAt: new Date(refresh.exp * 1000) }
    )
    if (updated === 0) throw new TokenInvalidError('refresh_not_valid')
    return { access: access.token, refresh: refresh.token }
  }

  /** Logout: ends the caller's session and records who ended it. */
  async end(em: EntityManager, sid: string, userId: number, client: Client): Promise<void> {
    const revoked = await em.transactional(async (tem) => {
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
    this.afterCommit(revoked)
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
    const revoked = rows.map((r) => ({ sid: r.id, exp: Number(r.exp) }))
    for (const r of revoked) await this.app.outbox.enqueue(em, 'revocation', r.sid, { exp: r.exp })
    return revoked
  }

  afterCommit(revoked: Revoked[]): void {
    // Refused here at once; the other processes learn it when the relay has written the bucket.
    for (const r of revoked) this.app.revocations.remember(r.sid, r.exp)
  }

  private async revokeAndPublish(em: EntityManager, target: { userId: number; only: string }) {
    const revoked = await em.transactional((tem) => this.revoke(tem as EntityManager, target))
    this.afterCommit(revoked)
  }
}
