import type { EntityManager } from '@mikro-orm/postgresql'
import { transactional, type ServiceApp } from '@roster/service-kit'
import type { Passwords } from './domain/passwords.js'
import * as users from './repositories/users.js'
import { identifierKey } from './domain/identifiers.js'

/**
 * Creates the admin if no user has that username, or makes an existing one an active admin. The
 * password of an existing account is left as it is unless `resetPassword` is set.
 */
export async function ensureAdmin(
  app: ServiceApp,
  em: EntityManager,
  passwords: Passwords,
  username: string,
  password: string,
  resetPassword = false
): Promise<{ id: number; created: boolean }> {
  try {
    return await upsertAdmin(app, em, passwords, username, password, resetPassword)
  } catch (error) {
    // Replicas starting together race to create the same admin; the loser finds it made.
    if ((error as { code?: string }).code !== '23505') throw error
    return upsertAdmin(app, em.fork(), passwords, username, password, resetPassword)
  }
}

async function upsertAdmin(
  app: ServiceApp,
  em: EntityManager,
  passwords: Passwords,
  username: string,
  password: string,
  resetPassword: boolean
): Promise<{ id: number; created: boolean }> {
  const name = username.normalize('NFKC')
  const existing = await users.findIdByUsernameKey(em, identifierKey(name))
  const hash = existing === null || resetPassword ? await passwords.hash(password) : null
  const id = await transactional(em, async (t) => {
    if (existing === null) {
      const account = { username: name, usernameKey: identifierKey(name), email: '', password: hash!, isStaff: true }
      const { user, fact } = await users.create(t, account, null, null)
      await app.outbox.emit(t, 'identity.user.created', { ...fact, actor: null })
      return user.id
    }
    // Under the row lock, as every change of a user; a reset password ends the account's sessions (see Sessions).
    const user = await users.lock(t, existing)
    if (!user) throw new Error('the admin account was deleted while being updated')
    user.isStaff = true
    user.isActive = true
    if (hash) {
      user.password = hash
      await app.identity.sessions.revoke(t, { userId: user.id }, null)
    }
    await app.outbox.emit(t, 'identity.user.updated', await users.nextFact(t, user.id, null))
    return user.id
  })
  // Every process refuses the ended sessions once the bucket has them: wait for it (bounded), as an answer does.
  await app.identity.sessions.settled()
  return { id, created: existing === null }
}
