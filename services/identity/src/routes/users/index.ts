import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { EntityManager } from '@mikro-orm/postgresql'
import { Type } from '@sinclair/typebox'
import {
  PkParamsSchema,
  UserCreateBodySchema,
  UserListQuerySchema,
  UserPatchBodySchema,
  UserUpdateBodySchema,
  ListHeadersDescription,
  type ProfileInput,
  type ProfilePatch,
  type UserPatchBody,
  publicPath
} from '@roster/contracts'
import {
  ApiError,
  FieldErrors,
  LIST_HEADERS,
  NotFoundError,
  assertSelfOrAdmin,
  message,
  pageOf,
  parsePk,
  transactional
} from '@roster/service-kit'
import * as users from '../../repositories/users.js'
import { usersPage } from '../../domain/users.js'
import { normalizeUsername } from '../../domain/identifiers.js'

const tags = ['users']
const userRef = Type.Ref('User')
const errorRef = Type.Ref('Detail')
const fieldErrors = Type.Ref('FieldErrors')
const PROFILE_REQUIRED = ['name', 'gender', 'age', 'identify_id'] as const

export const userRoutes: FastifyPluginAsyncTypebox = async function userRoutes(app) {
  const { config, passwords, sessions, replica } = app.identity
  const tz = config.ROSTER_TIME_ZONE

  async function checkOccupation(
    em: EntityManager,
    errors: FieldErrors,
    profile: ProfileInput | ProfilePatch | null | undefined
  ) {
    const occupation = profile?.occupation
    if (occupation === undefined || occupation === null) return
    if (!(await replica.occupationExists(em, occupation)))
      errors.add(['profile', 'occupation'], 'does_not_exist', { input: occupation })
  }

  /**
   * Inside the writing transaction: the occupation's replica row, share-locked, so its deletion (the
   * directory consumer's tombstone, which then clears it from every profile) either waits for this write or
   * is seen here, and no profile is left holding a deleted occupation.
   */
  async function lockOccupation(t: EntityManager, profile: ProfileInput | ProfilePatch | null | undefined) {
    const occupation = profile?.occupation
    if (occupation === undefined || occupation === null) return
    if (!(await replica.lockOccupation(t, occupation))) {
      new FieldErrors().add(['profile', 'occupation'], 'does_not_exist', { input: occupation }).throwIfAny()
    }
  }

  app.post(
    publicPath('registerUser'),
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'register a user',
        description: 'Anyone may register. `profile` is optional; its `name_pinyin` is computed from `name`.',
        security: [],
        body: UserCreateBodySchema,
        response: { 200: userRef, 400: fieldErrors }
      }
    },
    async function register(request) {
      const { body, em } = request
      const errors = new FieldErrors()
      const name = normalizeUsername(body.username)
      if ('error' in name) errors.add('username', name.error, name.params)
      const profileInput = body.profile as ProfileInput | null | undefined
      // One statement checks both, before bcrypt; a registration that loses a race for the username or email
      // afterwards is the same field error (kit's constraint table).
      const taken = await users.taken(em, { usernameKey: 'key' in name ? name.key : undefined, email: body.email })
      if (taken.username) errors.add('username', 'username_taken')
      if (taken.email) errors.add('email', 'email_taken')
      await checkOccupation(em, errors, profileInput)
      errors.throwIfAny()
      const { username, key } = name as { username: string; key: string }

      const hash = await passwords.hash(body.password)
      const creator = request.caller?.userId ?? null
      const { user, profile } = await transactional(em, async (t) => {
        await lockOccupation(t, profileInput)
        const account = { username, usernameKey: key, email: body.email ?? '', password: hash, isStaff: false }
        const created = await users.create(t, account, profileInput, creator)
        await app.outbox.emit(t, 'identity.user.created', created.fact)
        return created
      })
      return users.renderUser(user, profile, tz)
    }
  )

  app.get(
    publicPath('listUsers'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'list users (admin)',
        description:
          `Id ascending. ${ListHeadersDescription} \`search\` matches username, name, name pinyin, ` +
          'pinyin initials (`zs` for 张三) and phone, each field on its own. `cursor` (empty to start) pages by key, ' +
          'as fast at any depth: `Link` then carries cursors instead of offsets.',
        querystring: UserListQuerySchema,
        response: {
          200: { type: 'array', items: userRef, headers: LIST_HEADERS },
          400: fieldErrors,
          401: errorRef,
          403: errorRef
        }
      }
    },
    async function listUsers(request, reply) {
      const page = pageOf(request.query)
      return usersPage(request, reply, request.query, page, tz)
    }
  )

  app.get(
    publicPath('getUser'),
    {
      schema: {
        tags,
        summary: 'one user (self or admin)',
        params: PkParamsSchema,
        response: { 200: userRef, 401: errorRef, 403: errorRef, 404: errorRef }
      }
    },
    async function getUser(request) {
      const id = parsePk(request.params.pk)
      assertSelfOrAdmin(request, id)
      // One named statement outside any transaction: no fork for the request (see `Reads`).
      const [user] = await users.loadUsers(app.reads, [id], tz)
      if (!user) throw new NotFoundError()
      return user
    }
  )

  async function update(
    request: FastifyRequest<{ Params: { pk: string }; Body: UserPatchBody }>,
    reply: FastifyReply,
    replace: boolean
  ) {
    const id = parsePk(request.params.pk)
    const caller = assertSelfOrAdmin(request, id)
    const { em, body } = request
    // Read for the checks (and bcrypt) before the transaction; what is written is decided on the rows locked in
    // it, and a change made meanwhile to what was checked here is refused (409) rather than overwritten.
    const checked = await users.findForCheck(em, id)
    if (!checked) throw new NotFoundError()

    const errors = new FieldErrors()
    if (body.email !== undefined && body.email !== checked.email) {
      if ((await users.taken(em, { email: body.email, exceptId: id })).email) errors.add('email', 'email_taken')
    }
    let newHash: string | null = null
    if (body.password !== undefined && !(await passwords.verify(body.password, checked.password))) {
      if (caller.userId === id) {
        if (body.old_password === undefined) errors.add('old_password', 'required')
        else if (!(await passwords.verify(body.old_password, checked.password)))
          errors.add('old_password', 'old_password_wrong')
      }
      if (!errors.has('old_password')) newHash = await passwords.hash(body.password)
    }
    const profileInput = body.profile ?? undefined
    if (profileInput && !checked.hasProfile && !replace) {
      for (const field of PROFILE_REQUIRED)
        if (profileInput[field] === undefined) errors.add(['profile', field], 'required')
    }
    await checkOccupation(em, errors, profileInput)
    errors.throwIfAny()

    await transactional(em, async (t) => {
      // The user's row, locked: writers of one user (and its deletion) take turns, and the profile read next
      // is the one the previous writer left, so a profile is created once however many requests race for it.
      const user = await users.lock(t, id)
      if (!user) throw new NotFoundError()
      // The old password was checked against a hash another request has replaced since: let the client try again.
      if (newHash && user.password !== checked.password) throw new ApiError(409, 'conflict')
      await lockOccupation(t, profileInput)
      const existing = await users.profileOf(t, id)
      const staffChange = caller.isStaff && body.is_staff !== undefined && body.is_staff !== user.isStaff
      const activeChange = caller.isStaff && body.is_active !== undefined && body.is_active !== user.isActive
      if (body.email !== undefined) user.email = body.email
      if (newHash) user.password = newHash
      if (staffChange) user.isStaff = body.is_staff!
      if (activeChange) user.isActive = body.is_active!
      if (profileInput) {
        if (existing) {
          users.profileFields(existing, profileInput, replace)
          existing.modifier = caller.userId
          existing.modifyTime = new Date()
        } else {
          users.addProfile(t, profileInput, { user: id, creator: caller.userId })
        }
      } else if (existing && (newHash || body.email !== undefined)) {
        existing.modifier = caller.userId
      }
      // What ends sessions: deactivation, a change of is_staff either way (tokens carry it), a new
      // password (all but the caller's own session when users change their own).
      if ((activeChange && !user.isActive) || staffChange) await sessions.revoke(t, { userId: id }, reply)
      else if (newHash)
        await sessions.revoke(t, { userId: id, except: caller.userId === id ? caller.sid : undefined }, reply)
      await app.outbox.emit(t, 'identity.user.updated', await users.nextFact(t, id, caller.userId))
    })
    const [rendered] = await users.loadUsers(em.fork(), [id], tz)
    if (!rendered) throw new NotFoundError() // deleted right after this change committed
    return rendered
  }

  const updateResponses = { 200: userRef, 400: fieldErrors, 401: errorRef, 403: errorRef, 404: errorRef, 409: errorRef }
  app.put(
    publicPath('replaceUser'),
    {
      schema: {
        tags,
        summary: 'replace a user (self or admin)',
        description:
          'Replaces `email`, `password` (absent keeps it) and `profile` (absent or null keeps it). Changing your own ' +
          'password needs `old_password` and ends your other sessions. Only an admin changes `is_staff` / `is_active`. ' +
          '`409`: the password was changed by another request meanwhile; try again.',
        params: PkParamsSchema,
        body: UserUpdateBodySchema,
        response: updateResponses
      }
    },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the handler's request type is the route's own, its body schema differs from update's
    (request, reply) => update(request as any, reply, true)
  )
  app.patch(
    publicPath('updateUser'),
    {
      schema: {
        tags,
        summary: 'change some fields of a user (self or admin)',
        params: PkParamsSchema,
        body: UserPatchBodySchema,
        response: updateResponses
      }
    },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the handler's request type is the route's own, its body schema differs from update's
    (request, reply) => update(request as any, reply, false)
  )

  app.delete(
    publicPath('deleteUser'),
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'delete a user (admin)',
        description: 'Deletes the user and profile, ends its sessions and removes its memberships; log history stays.',
        params: PkParamsSchema,
        response: { 200: errorRef, 401: errorRef, 403: errorRef, 404: errorRef }
      }
    },
    async function deleteUser(request, reply) {
      const id = parsePk(request.params.pk)
      const caller = request.caller!
      if (caller.userId === id) throw new ApiError(403, 'cannot_delete_self')
      await transactional(request.em, async (t) => {
        // Locked first: a concurrent delete waits, then finds nothing (one `deleted` event per user).
        const user = await users.lock(t, id)
        if (!user) throw new NotFoundError()
        await sessions.revoke(t, { userId: id }, reply)
        await users.remove(t, id)
        await app.outbox.emit(t, 'identity.user.deleted', {
          user_id: id,
          username: user.username,
          actor: caller.userId
        })
      })
      return { detail: message('deleted', request.lang) }
    }
  )
}
