import { randomUUID } from 'node:crypto'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { TokenPair } from '@roster/contracts'
import type { FastifyReply } from 'fastify'
import {
  REVOKED_SESSIONS_HEADER,
  TokenInvalidError,
  afterCommit,
  formatRevokedSessions,
  transactional,
  type ServiceApp
} from '@roster/service-kit'
import * as sessions from '../repositories/sessions.js'
import * as users from '../repositories/users.js'
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

/** How long an answer that ended sessions waits for the revocation bucket to have them. */
const PUBLISH_WAIT_MS = 2000

/**
 * Sessions: every login starts one, tokens carry its id (`sid`), and ending one publishes the id to the
 * shared revocation bucket through the outbox, so every replica of every service refuses its tokens.
 *
 * A session that ended stays ended: session creation is serialized with the user's state on the user's
 * row lock (`users.lock`, `select … for update`). Login checks the password with no transaction and no
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
 * The ending is visible before the change answers: `revoke` registers, for once its transaction has
 * committed, that the process remembers the sids, that the answer names them in the internal response
 * header `x-roster-revoked-sessions` (so the gateway carrying it refuses them from the moment the client
 * has it), and that the answer waits for the outbox's write to the bucket (bounded, when NATS is up; see
 * `beforeSend`); other replicas learn them through the bucket's watch. Routes have nothing to remember.
 */
export class Sessions {
  /** Per answer, the bucket writes it waits for before it is sent. */
  private readonly publishing = new WeakMap<FastifyReply, Promise<void>[]>()
  private readonly unanswered = new Set<Promise<void>>()

  constructor(
    private readonly app: ServiceApp,
    private readonly tokens: Tokens,
    private readonly rotateRefresh: boolean
  ) {}

  /**
   * Starts a session inside the caller's transaction (the login's, so a login is one transaction): the
   * session row and the login event (the last-login time is written with the login's lock, `users.lockForLogin`).
   */
  async open(
    em: EntityManager,
    user: { id: number; username: string; isStaff: boolean },
    client: Client
  ): Promise<TokenPair> {
    const sid = randomUUID()
    const refresh = this.tokens.issue('refresh', user.id, sid)
    const access = this.tokens.issue('access', user.id, sid, { is_staff: user.isStaff })
    await sessions.insert(em, {
      id: sid,
      user: user.id,
      refreshJti: refresh.jti,
      expiresAt: new Date(refresh.exp * 1000),
      ip: client.ip,
      userAgent: client.userAgent
    })
    await this.app.outbox.emit(em, 'identity.session.login', {
      session_id: sid,
      user_id: user.id,
      username: user.username,
      ip: client.ip,
      user_agent: client.userAgent
    })
    return { refresh: refresh.token, access: access.token }
  }

  /** A new access token (and, rotating, a new refresh token) for a valid refresh token; `reply` as for `revoke`. */
  async refresh(
    em: EntityManager,
    token: string,
    reply: FastifyReply | null
  ): Promise<{ access: string; refresh?: string }> {
    const claims = this.tokens.verifyRefresh(token)
    if (!claims || this.app.revocations.isRevoked(claims.sid)) throw new TokenInvalidError('refresh_not_valid')
    const outcome = await transactional(em, async (t) => {
      // Shared: refreshes do not wait for one another, an ending change waits for them (and they for it).
      const user = await users.lock(t, claims.user_id, 'share')
      if (!user || !user.isActive) return null
      const session = await sessions.find(t, claims.sid)
      if (!session || session.revokedAt || session.user !== claims.user_id || session.expiresAt < new Date())
        return null
      if (this.rotateRefresh && session.refreshJti !== claims.jti) {
        // A refresh token that was already exchanged is being reused: the session is compromised.
        await this.revoke(t, { userId: user.id, only: session.id }, reply)
        return null
      }
      const access = this.tokens.issue('access', user.id, session.id, { is_staff: user.isStaff })
      if (!this.rotateRefresh) return { access: access.token }
      const refresh = this.tokens.issue('refresh', user.id, session.id)
      const rotated = await sessions.rotate(t, session.id, claims.jti, {
        jti: refresh.jti,
        expiresAt: new Date(refresh.exp * 1000)
      })
      return rotated ? { access: access.token, refresh: refresh.token } : null
    })
    if (!outcome) throw new TokenInvalidError('refresh_not_valid')
    return outcome
  }

  /**
   * Logout: ends the caller's session and records who ended it. A session ends once: of two logouts with
   * one token at once, the second (it waits for the user's row lock) finds the session ended and is the
   * `401` a logout after it is, with no second logout event (parallel logouts wrote one log row each).
   */
  async end(em: EntityManager, sid: string, userId: number, client: Client, reply: FastifyReply): Promise<void> {
    await transactional(em, async (t) => {
      await users.lock(t, userId)
      if ((await this.revoke(t, { userId, only: sid }, reply)) === 0) throw new TokenInvalidError()
      await this.app.outbox.emit(t, 'identity.session.logout', {
        session_id: sid,
        user_id: userId,
        operator: userId,
        ip: client.ip,
        user_agent: client.userAgent
      })
    })
  }

  /**
   * Revokes sessions of a user inside the caller's transaction (all, all but one, or only one), under the
   * user's row lock the caller holds. Once the transaction has committed, the sessions are refused here at
   * once, named to the gateway carrying `reply` (null: no answer carries it), and written to the bucket for
   * every other process, which `reply` waits for (bounded). Answers how many sessions it ended.
   */
  async revoke(
    em: EntityManager,
    target: { userId: number; except?: string; only?: string },
    reply: FastifyReply | null
  ): Promise<number> {
    const revoked: Revoked[] = []
    for (const { id, exp } of await sessions.revoke(em, target)) {
      revoked.push({ sid: id, exp, eventId: await this.app.outbox.enqueue(em, 'revocation', id, { exp }) })
    }
    if (revoked.length > 0) afterCommit(em, () => this.announce(revoked, reply))
    return revoked.length
  }

  private announce(revoked: Revoked[], reply: FastifyReply | null): void {
    for (const r of revoked) this.app.revocations.remember(r.sid, r.exp)
    if (reply && !reply.sent) reply.header(REVOKED_SESSIONS_HEADER, formatRevokedSessions(revoked))
    if (!this.app.nats.connected()) return
    const published = this.published(revoked)
    if (!reply) {
      this.unanswered.add(published)
      void published.finally(() => this.unanswered.delete(published))
      return
    }
    const waits = this.publishing.get(reply) ?? []
    waits.push(published)
    this.publishing.set(reply, waits)
  }

  /** Waits for the bucket writes of revocations no answer carries (`reply` null: the admin command), bounded. */
  async settled(): Promise<void> {
    await Promise.all(this.unanswered)
  }

  /** Resolves once the bucket has these revocations or the wait is over; never rejects (the relay retries). */
  private async published(revoked: Revoked[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.app.outbox.settled(revoked.map((r) => r.eventId)).catch(() => undefined),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, PUBLISH_WAIT_MS)))
    ])
    clearTimeout(timer)
  }

  /**
   * An `onSend` hook: an answer that ended sessions leaves once the bucket has them (or the wait is over), so
   * a client that has it finds them refused by every process.
   */
  readonly beforeSend = (
    _request: unknown,
    reply: FastifyReply,
    payload: unknown,
    done: (err: null, payload: unknown) => void
  ) => {
    const waits = this.publishing.get(reply)
    if (!waits) return done(null, payload)
    this.publishing.delete(reply)
    Promise.all(waits).then(
      () => done(null, payload),
      () => done(null, payload)
    )
  }
}
