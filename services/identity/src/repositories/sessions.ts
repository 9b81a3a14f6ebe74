import type { EntityManager } from '@mikro-orm/postgresql'
import { sql } from '@roster/service-kit'
import { SessionEntity, type SessionRow } from '../entities/index.js'

/** Sessions (`session`): the only module that reads or writes the table. */

export async function insert(
  em: EntityManager,
  session: { id: string; user: number; refreshJti: string; expiresAt: Date; ip: string; userAgent: string }
): Promise<void> {
  // Raw: the login's hot path (MikroORM's insert builds a query each time).
  await sql(
    em,
    `insert into session (id, user_id, refresh_jti, created_at, expires_at, revoked_at, ip, user_agent)
     values (?, ?, ?, ?, ?, null, ?, ?)`,
    [session.id, session.user, session.refreshJti, new Date(), session.expiresAt, session.ip, session.userAgent]
  )
}

export async function find(em: EntityManager, id: string): Promise<SessionRow | null> {
  return em.findOne(SessionEntity, { id }, { refresh: true })
}

/**
 * Rotation: the session's refresh token `from` becomes `to`, if it is still the session's and the session is
 * not revoked. Whether it was.
 */
export async function rotate(
  em: EntityManager,
  id: string,
  from: string,
  to: { jti: string; expiresAt: Date }
): Promise<boolean> {
  const updated = await em.nativeUpdate(
    SessionEntity,
    { id, refreshJti: from, revokedAt: null },
    { refreshJti: to.jti, expiresAt: to.expiresAt }
  )
  return updated > 0
}

/**
 * Revokes sessions of a user (all, all but one, or only one) and answers those this statement revoked, with
 * their expiry. Raw: `update … returning` revokes and reads in one statement, so two requests ending one
 * session never both report it; MikroORM's update answers a count only.
 */
export async function revoke(
  em: EntityManager,
  target: { userId: number; except?: string; only?: string }
): Promise<{ id: string; exp: number }[]> {
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
  const rows = await sql<{ id: string; exp: string | number }>(
    em,
    `update session set revoked_at = now() where ${conditions.join(' and ')}
     returning id, extract(epoch from expires_at)::bigint as exp`,
    params
  )
  return rows.map((r) => ({ id: r.id, exp: Number(r.exp) }))
}
