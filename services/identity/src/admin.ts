import type { EntityManager } from '@mikro-orm/postgresql'
import { UserEntity } from './entities/index.js'
import type { Passwords } from './domain/passwords.js'
import { nextUserFact } from './domain/users.js'
import { identifierKey } from './domain/identifiers.js'
import type { ServiceApp } from '@roster/service-kit'

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
  const [row] = await em
    .getConnection()
    .execute<{ id: number }[]>('select id from app_user where username_key = ?', [identifierKey(username.normalize('NFKC'))])
  const created = !row
  const hash = created || resetPassword ? await passwords.hash(password) : null
  const { id, ended } = await em.transactional(async (tem) => {
    const t = tem as EntityManager
    // A reset password ends the account's sessions, under the row lock as every ending change (see Sessions).
    const ended = row && hash ? (await app.identity.sessions.lockUser(t, row.id), await app.identity.sessions.revoke(t, { userId: row.id })) : []
    let user = row ? await t.findOneOrFail(UserEntity, { id: row.id }) : null
    if (!user) {
      user = t.create(UserEntity, {
        username: username.normalize('NFKC'),
        usernameKey: identifierKey(username),
        email: '',
        password: hash!,
        isStaff: true,
        isActive: true,
        dateJoined: new Date(),
        lastLogin: null
      })
    } else {
      user.isStaff = true
      user.isActive = true
      if (hash) user.password = hash
    }
    await t.flush()
    await app.outbox.emit(t, created ? 'identity.user.created' : 'identity.user.updated', await nextUserFact(t, user.id, null))
    return { id: user.id, ended }
  })
  await app.identity.sessions.afterCommit(ended)
  return { id, created }
}
