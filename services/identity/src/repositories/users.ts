import { createHash } from 'node:crypto'
import type { EntityManager } from '@mikro-orm/postgresql'
import { LockMode } from '@mikro-orm/core'
import type { EventData, ProfileInput, ProfilePatch, User, UserListQuery } from '@roster/contracts'
import { FieldErrors, formatTime, lockRows, namedSql, sql, type Page, type Reads } from '@roster/service-kit'
import { ProfileEntity, SEARCH_KEY_LENGTH, UserEntity, type ProfileRow, type UserRow } from '../entities/index.js'
import { nameInitials, namePinyin } from '../domain/pinyin.js'

/**
 * The user aggregate (`app_user` + `profile`): the only module that reads or writes those tables, and the one
 * place a user's representation (`renderUser`), its profile columns (`profileFields`) and its fact
 * (`userFact`) are built.
 */

export type UserFact = EventData<'identity.user.created'>

/** What the representation needs of a user row. */
type UserPart = Pick<UserRow, 'id' | 'username' | 'email' | 'isStaff' | 'isActive'>
/** What it needs of a profile row; times as `Date` (entities) or epoch milliseconds (the hot read). */
type ProfilePart = Omit<ProfileRow, 'namePinyin' | 'nameInitials' | 'createTime' | 'modifyTime'> & {
  namePinyin: string
  createTime: Date | number | string
  modifyTime: Date | number | string
}

const time = (value: Date | number | string, timeZone: string) =>
  formatTime(value instanceof Date ? value : new Date(Number(value)), timeZone)

/** The user's representation (`User` of the contract): the one mapper, for entities and for the hot read's rows. */
export function renderUser(user: UserPart, profile: ProfilePart | null | undefined, timeZone: string): User {
  return {
    id: user.id,
    username: user.username,
    email: user.email,
    is_staff: user.isStaff,
    is_active: user.isActive,
    profile: profile
      ? {
          age: profile.age,
          name: profile.name,
          name_pinyin: profile.namePinyin,
          gender: profile.gender,
          identify_id: profile.identifyId,
          phone: profile.phone,
          address: profile.address,
          create_time: time(profile.createTime, timeZone),
          modify_time: time(profile.modifyTime, timeZone),
          user: profile.user,
          occupation: profile.occupation,
          creator: profile.creator,
          modifier: profile.modifier
        }
      : null
  }
}

/** The optional profile columns as a new profile (or one replaced by `PUT`) has them when the input omits them. */
const PROFILE_DEFAULTS = { phone: '', address: '', occupation: null } satisfies Partial<ProfileRow>

/**
 * The profile columns an input sets (pinyin and initials follow the name); `replace` (`PUT`) first resets the
 * optional ones the input may leave out.
 */
export function profileFields(
  target: Partial<ProfileRow>,
  input: ProfileInput | ProfilePatch,
  replace = false
): Partial<ProfileRow> {
  if (replace) Object.assign(target, PROFILE_DEFAULTS)
  if (input.name !== undefined) {
    target.name = input.name
    target.namePinyin = namePinyin(input.name)
    target.nameInitials = nameInitials(input.name)
  }
  if (input.gender !== undefined) target.gender = input.gender
  if (input.age !== undefined) target.age = input.age
  if (input.identify_id !== undefined) target.identifyId = input.identify_id
  if (input.phone !== undefined) target.phone = input.phone
  if (input.address !== undefined) target.address = input.address
  if (input.occupation !== undefined) target.occupation = input.occupation
  return target
}

/** The fact `identity.user.created` / `updated` carry, and the internal read-through answers. */
export function userFact(
  user: Pick<UserRow, 'id' | 'username' | 'isStaff' | 'isActive' | 'version'>,
  actor: number | null
): UserFact {
  return {
    user_id: user.id,
    username: user.username,
    is_staff: user.isStaff,
    is_active: user.isActive,
    version: user.version,
    actor
  }
}

type JoinedRow = UserPart & Omit<ProfilePart, 'user'> & { user: number | null }

// Times leave SQL as epoch milliseconds: the driver hands timestamptz over as text in a format Date does not parse.
const JOINED = `select u.id, u.username, u.email, u.is_staff as "isStaff", u.is_active as "isActive",
  p.user_id as "user", p.name, p.name_pinyin as "namePinyin", p.gender, p.age, p.identify_id as "identifyId",
  p.phone, p.address, p.occupation_id as occupation, p.creator_id as creator, p.modifier_id as modifier,
  extract(epoch from p.create_time) * 1000 as "createTime", extract(epoch from p.modify_time) * 1000 as "modifyTime"
  from app_user u left join profile p on p.user_id = u.id`

/**
 * Users with their profiles, in the order of `ids`, in one query. This is the hot read path (detail and every
 * list), so it skips the ORM's unit of work and maps rows straight to the representation.
 */
export async function loadUsers(em: Reads, ids: number[], timeZone: string): Promise<User[]> {
  if (ids.length === 0) return []
  // A named statement outside transactions (parsed and planned once per connection, no knex): identity's
  // CPU per GET /api/users/{pk}/ fell by about a third against the ORM/knex path (see preparedQuery).
  const rows = await namedSql<JoinedRow>(em, 'identity_load_users', `${JOINED} where u.id = any($1::int[])`, [
    `{${ids.join(',')}}`
  ])
  const byId = new Map(rows.map((r) => [r.id, r]))
  return ids.flatMap((id) => {
    const r = byId.get(id)
    if (!r) return []
    return [renderUser(r, r.user === null ? null : (r as JoinedRow & { user: number }), timeZone)]
  })
}

export interface UserFilter extends Omit<UserListQuery, 'limit' | 'offset'> {
  /** Members of this group only (the group's member list). */
  memberOf?: number
}

/**
 * Where a cursor page starts: after a user id (the next pages) or before one (the previous ones). On the
 * wire a cursor is base64url of `a<id>.<check>` or `b<id>.<check>`, the check being 8 hex digits of a
 * SHA-256 of the rest. A cursor carries no right of its own (any id is as good as any other), so the check
 * is no signature: it makes an edited or truncated cursor a 400 rather than some other page.
 */
export interface UserCursor {
  after?: number
  before?: number
}

export function encodeCursor(cursor: UserCursor): string {
  const position = cursor.before !== undefined ? `b${cursor.before}` : `a${cursor.after ?? 0}`
  const check = createHash('sha256').update(`roster users cursor ${position}`).digest('hex').slice(0, 8)
  return Buffer.from(`${position}.${check}`).toString('base64url')
}

/** The cursor sent (empty: the first page), or `400 {"cursor": [...]}` for anything encodeCursor did not write. */
export function decodeCursor(text: string): UserCursor {
  if (text === '') return { after: 0 }
  const decoded = /^[A-Za-z0-9_-]+$/.test(text) ? Buffer.from(text, 'base64url').toString('latin1') : ''
  const match = /^([ab])(0|[1-9][0-9]{0,9})\.[0-9a-f]{8}$/.exec(decoded)
  const id = match ? Number(match[2]) : NaN
  const cursor: UserCursor = match?.[1] === 'b' ? { before: id } : { after: id }
  // Compared with what encodeCursor makes of it: the check, and no other spelling of one position.
  if (!match || id > 2147483647 || encodeCursor(cursor) !== text) {
    new FieldErrors().add('cursor', 'invalid').throwIfAny()
  }
  return cursor
}

/**
 * The ids of users whose username, name, name pinyin, pinyin initials or phone contains `search`
 * (case-insensitive, every character literal), each field matched on its own, as rows of `user_search_key`
 * (every suffix of each field, lower case, cut to SEARCH_KEY_LENGTH characters): the keys from the search,
 * lower case, up to the first string after those starting with it, an index-only range scan as long as
 * the matches. A user matching by several suffixes is listed once per suffix. A longer search is looked
 * up by its first SEARCH_KEY_LENGTH characters and then checked against the fields themselves.
 */
function searchMatches(search: string, params: unknown[]): string {
  params.push(search, search)
  const range = `select s.user_id from user_search_key s
    where s.key >= left(lower(?), ${SEARCH_KEY_LENGTH}) collate "C"
      and s.key < user_search_after(left(lower(?), ${SEARCH_KEY_LENGTH})) collate "C"`
  if ([...search].length <= SEARCH_KEY_LENGTH / 2) return range
  // lower() may lengthen a string; beyond the key's length the fields decide (cheap: the range is narrow).
  params.push(search, ...Array<string>(5).fill(search))
  return `${range} and (char_length(lower(?)) <= ${SEARCH_KEY_LENGTH} or exists (
      select 1 from app_user u left join profile p on p.user_id = u.id
      where u.id = s.user_id and (strpos(lower(u.username), lower(?)) > 0 or strpos(lower(p.name), lower(?)) > 0
        or strpos(lower(p.name_pinyin), lower(?)) > 0 or strpos(lower(p.name_initials), lower(?)) > 0
        or strpos(lower(p.phone), lower(?)) > 0)))`
}

/**
 * One page of user ids matching the filters, ascending, and the total count. Each filter is a
 * condition on `app_user` alone (profile and membership filters as semi-joins on indexes ordered by user
 * id), so the page is read in primary-key order. The count of a list with no filter, or with one filter
 * other than `search`, is kept by triggers (`app_user_total`, `user_list_count`): counting half a million
 * rows for each page is not. With a cursor, the page is the `limit` ids after (or before) it, found by
 * key however deep; `offset` is then not used.
 */
export async function searchUserIds(
  em: EntityManager,
  filter: UserFilter,
  page: Page
): Promise<{ ids: number[]; total: number; more?: boolean }> {
  const cursor = filter.cursor === undefined ? undefined : decodeCursor(filter.cursor)
  const bound =
    cursor && (cursor.before !== undefined ? { op: '<', id: cursor.before } : { op: '>', id: cursor.after ?? 0 })
  const order = cursor?.before !== undefined ? 'u.id desc' : 'u.id'
  // With a cursor one row more than the page tells whether another page follows in that direction.
  const limit = cursor ? page.limit + 1 : page.limit
  const offset = cursor ? 0 : page.offset
  const connection = em.getConnection()

  let ids: number[]
  let total: number
  const counted = countedFilter(filter)
  const plain = userConditions(filter, bound)
  if (!filter.search && plain.counted <= 1) {
    // Read in id order from the indexes (the cursor's bound inside each semi-join, so that a deep page
    // starts where it is, not at the first matching row); the count comes from the kept totals.
    const [rows, [count]] = await Promise.all([
      connection.execute<{ id: number }[]>(
        `select u.id from app_user u ${whereOf(plain.conditions)} order by ${order} limit ? offset ?`,
        [...plain.params, limit, offset]
      ),
      counted === undefined
        ? connection.execute<{ total: string }[]>('select total from app_user_total')
        : connection.execute<{ total: string }[]>(
            'select coalesce((select total from user_list_count where filter = ? and value = ?), 0) as total',
            counted
          )
    ])
    ids = rows.map((r) => r.id)
    total = Number(count.total)
  } else {
    const all = userConditions(filter)
    const desc = cursor?.before !== undefined ? ' desc' : ''
    let text: string
    let params: unknown[]
    if (all.conditions.length === 1 && filter.search) {
      // Searched alone, the fields' matches are the set (every profile has its user: no join back to
      // app_user), a user once however many of its suffixes match. One range scan gives both the count and
      // the page: the distinct ids in order, aggregated in that order and sliced.
      // At a million users, `伟` (20 082 matches) and `angwe` (9 994) take ~5 ms of PostgreSQL this way; the
      // count and the page as two subqueries each reading the range took as long in the service (pgbench,
      // whose plan hashed the page's distinct, had `伟` at 16 ms that way).
      // The aggregate reads the sorted subquery in its order (PostgreSQL's documented way to order an
      // aggregate's input without sorting again inside it, as `array_agg(id order by id)` does before 16).
      // The subquery's LIMIT, far above any count, keeps it so: a partial aggregate split across parallel
      // workers (possible for array_agg from PostgreSQL 16) cannot sit above a Limit.
      text = `select count(*) as total,
          (array_agg(id)${bound ? ` filter (where id ${bound.op} ?)` : ''})[least(?::bigint + 1, ${INT_MAX})::int : least(?::bigint + ?, ${INT_MAX})::int] as ids
        from (select distinct user_id from (${all.search}) s(user_id) order by 1${desc} limit ${INT_MAX}) m(id)`
      params = [...(bound ? [bound.id] : []), offset, offset, limit, ...all.params]
    } else {
      // Combined with other filters: the count and the page each read app_user under all the conditions.
      const where = whereOf(all.conditions)
      const paged = whereOf([...all.conditions, ...(bound ? [`u.id ${bound.op} ?`] : [])])
      text = `select (select count(*) from app_user u ${where}) as total,
          array(select u.id from app_user u ${paged} order by 1${desc} limit ? offset ?) as ids`
      params = [...all.params, ...all.params, ...(bound ? [bound.id] : []), limit, offset]
    }
    const [row] = await connection.execute<{ total: string; ids: number[] | null }[]>(text, params)
    ids = row.ids ?? []
    total = Number(row.total)
  }
  if (!cursor) return { ids, total }
  const more = ids.length > page.limit
  ids = ids.slice(0, page.limit)
  if (cursor.before !== undefined) ids.reverse()
  return { ids, total, more }
}

/** PostgreSQL's largest int: an array subscript is one (an offset may be up to it, and a limit beyond). */
const INT_MAX = 2147483647

const whereOf = (conditions: string[]) => (conditions.length ? `where ${conditions.join(' and ')}` : '')

/** The one filter whose count is kept in `user_list_count`, as [filter, value], when exactly one is set. */
function countedFilter(filter: UserFilter): [string, number] | undefined {
  const set: [string, number][] = []
  if (filter.occupation !== undefined) set.push(['occupation', filter.occupation])
  if (filter.gender !== undefined) set.push(['gender', filter.gender])
  if (filter.is_active !== undefined) set.push(['is_active', Number(filter.is_active)])
  if (filter.group !== undefined) set.push(['group', filter.group])
  if (filter.memberOf !== undefined) set.push(['group', filter.memberOf])
  return set.length === 1 && !filter.search ? set[0] : undefined
}

/**
 * The filters as conditions on `app_user u` (profile and membership filters as semi-joins), with their
 * parameters in order; `bound` (a cursor's `u.id > ?` or `<`) is repeated inside each semi-join so that
 * PostgreSQL starts each index there. `counted` is the number of non-search filters.
 */
function userConditions(filter: UserFilter, bound?: { op: string; id: number }) {
  const conditions: string[] = []
  const params: unknown[] = []
  let counted = 0
  const within = (column: string) => {
    if (!bound) return ''
    params.push(bound.id)
    return ` and ${column} ${bound.op} ?`
  }
  let search = ''
  if (filter.search) {
    const searchParams: unknown[] = []
    search = searchMatches(filter.search, searchParams)
    conditions.push(`u.id in (${search})`)
    params.push(...searchParams)
  }
  const profile: string[] = []
  const profileParams: unknown[] = []
  if (filter.occupation !== undefined) {
    profile.push('p.occupation_id = ?')
    profileParams.push(filter.occupation)
  }
  if (filter.gender !== undefined) {
    profile.push('p.gender = ?')
    profileParams.push(filter.gender)
  }
  if (profile.length) {
    counted += profile.length
    params.push(...profileParams)
    conditions.push(`u.id in (select p.user_id from profile p where ${profile.join(' and ')}${within('p.user_id')})`)
  }
  if (filter.is_active !== undefined) {
    counted++
    conditions.push('u.is_active = ?')
    params.push(filter.is_active)
  }
  for (const group of [filter.group, filter.memberOf]) {
    if (group === undefined) continue
    counted++
    params.push(group)
    conditions.push(`u.id in (select m.user_id from membership m where m.group_id = ?${within('m.user_id')})`)
  }
  if (bound) {
    conditions.push(`u.id ${bound.op} ?`)
    params.push(bound.id)
  }
  return { conditions, params, counted, search }
}

/**
 * Whether another user has this username key (NFKC + case folding, see identifiers.ts) or this email, in one
 * statement. Raw: the email is compared as its unique index is built, `lower(email)`, which the ORM's
 * criteria cannot say without a raw fragment (an `ilike` would miss the index).
 */
export async function taken(
  em: EntityManager,
  check: { usernameKey?: string; email?: string; exceptId?: number }
): Promise<{ username: boolean; email: boolean }> {
  const email = check.email ?? ''
  if (check.usernameKey === undefined && email === '') return { username: false, email: false }
  const [row] = await namedSql<{ username: boolean; email: boolean }>(
    em,
    'identity_taken',
    `select coalesce(bool_or(username_key = $1), false) as username,
       coalesce(bool_or($2 <> '' and lower(email) = lower($2)), false) as email
     from app_user where id <> $3 and (username_key = $1 or ($2 <> '' and lower(email) = lower($2)))`,
    [check.usernameKey ?? null, email, check.exceptId ?? 0]
  )
  return row
}

/**
 * The account a login names: its id and password hash (null when no user has the key). Raw, as a named
 * statement outside a transaction: the ORM's query building was a sixth of a login's CPU outside bcrypt.
 */
export async function findForLogin(
  em: EntityManager,
  usernameKey: string
): Promise<{ id: number; password: string } | null> {
  const [row] = await namedSql<{ id: number; password: string }>(
    em,
    'identity_find_for_login',
    'select id, password from app_user where username_key = $1',
    [usernameKey]
  )
  return row ?? null
}

export async function findIdByUsernameKey(em: EntityManager, usernameKey: string): Promise<number | null> {
  const user = await em.findOne(UserEntity, { usernameKey }, { fields: ['id'], disableIdentityMap: true })
  return user?.id ?? null
}

/** What a change of the user checks before its transaction: the email and hash now, and whether it has a profile. */
export async function findForCheck(
  em: EntityManager,
  id: number
): Promise<{ email: string; password: string; hasProfile: boolean } | null> {
  const [user, profiles] = await Promise.all([
    em.findOne(UserEntity, { id }, { fields: ['email', 'password'], disableIdentityMap: true }),
    em.count(ProfileEntity, { user: id })
  ])
  return user ? { email: user.email, password: user.password, hasProfile: profiles > 0 } : null
}

export async function exists(em: EntityManager, id: number): Promise<boolean> {
  return (await em.count(UserEntity, { id })) > 0
}

/**
 * The user's row, locked until the end of the caller's transaction (`update`: login and every change of the
 * user; `share`: refresh), re-read from the database; null when the user does not exist (any more).
 */
export async function lock(
  em: EntityManager,
  id: number,
  mode: 'update' | 'share' = 'update'
): Promise<UserRow | null> {
  const lockMode = mode === 'share' ? LockMode.PESSIMISTIC_READ : LockMode.PESSIMISTIC_WRITE
  return em.findOne(UserEntity, { id }, { lockMode, refresh: true })
}

/** What a login re-checks of the account under its row lock (see `lock`). */
export type LoginAccount = Pick<UserRow, 'id' | 'username' | 'password' | 'isStaff' | 'isActive'>

/**
 * The login's `lock`, in one statement with its write: the user's row locked until the end of the caller's
 * transaction and re-read as plain columns, its last-login time set when the login will succeed (the row
 * still has the `checkedHash` the password was checked against, and is active); null when the user no
 * longer exists. An `update` locks the row `for no key update`: it waits for, and holds off, every `lock`
 * (`for update` / `for share`) as `lock` would, and leaves foreign keys to it alone (`lockAgainstDeletion`).
 */
export async function lockForLogin(em: EntityManager, id: number, checkedHash: string): Promise<LoginAccount | null> {
  if (!em.isInTransaction()) throw new Error('lockForLogin outside a transaction locks nothing')
  const [row] = await sql<LoginAccount>(
    em,
    `update app_user set last_login = case when is_active and password = ? then now() else last_login end
     where id = ? returning id, username, password, is_staff as "isStaff", is_active as "isActive"`,
    [checkedHash, id]
  )
  return row ?? null
}

/** Locks these users against deletion (`for key share`) while rows referring to them are written; those found. */
export function lockAgainstDeletion(em: EntityManager, ids: number[]): Promise<Set<number>> {
  return lockRows(em, 'app_user', ids, 'key share')
}

/** The user's profile as the database has it now (null: none yet). */
export async function profileOf(em: EntityManager, userId: number): Promise<ProfileRow | null> {
  return em.findOne(ProfileEntity, { user: userId }, { refresh: true })
}

/** A new profile from an input (absent optional fields empty), written with the next flush. */
export function addProfile(
  em: EntityManager,
  input: ProfileInput | ProfilePatch,
  owner: { user: number; creator: number | null }
): ProfileRow {
  const fields = profileFields({ user: owner.user, creator: owner.creator, modifier: null }, input)
  return em.create(ProfileEntity, { ...PROFILE_DEFAULTS, ...fields } as ProfileRow)
}

/**
 * Registration: the user (and its profile) inserted in the caller's transaction, in one statement; the rows as
 * inserted and the fact of its creation. Raw: MikroORM's unit of work (change sets, hooks, two flushes) cost
 * more of a registration's CPU than everything else around bcrypt; nothing reads these rows as entities
 * afterwards.
 */
export async function create(
  em: EntityManager,
  account: { username: string; usernameKey: string; email: string; password: string; isStaff: boolean },
  profile: ProfileInput | null | undefined,
  creator: number | null
): Promise<{ user: UserRow; profile: ProfileRow | null; fact: UserFact }> {
  const dateJoined = new Date()
  const userValues = [account.username, account.usernameKey, account.email, account.password, account.isStaff]
  const insertUser = `insert into app_user
      (username, username_key, email, password, is_staff, is_active, date_joined, last_login, version)
    values (?, ?, ?, ?, ?, true, ?, null, 1) returning id`
  let id: number
  let created: ProfileRow | null = null
  if (!profile) {
    ;[{ id }] = await sql<{ id: number }>(em, insertUser, [...userValues, dateJoined])
  } else {
    // The profile's creator is the caller, or the new user registering itself (known once inserted: `u.id`).
    const fields = { ...PROFILE_DEFAULTS, ...profileFields({ modifier: null }, profile) } as ProfileRow
    ;[{ id }] = await sql<{ id: number }>(
      em,
      `with u as (${insertUser})
       insert into profile (user_id, name, name_pinyin, name_initials, gender, age, identify_id, phone, address,
         occupation_id, creator_id, modifier_id, create_time, modify_time)
       values ((select id from u), ?, ?, ?, ?, ?, ?, ?, ?, ?, coalesce(?::int, (select id from u)), null, ?, ?)
       returning user_id as id`,
      [
        ...userValues,
        dateJoined,
        fields.name,
        fields.namePinyin,
        fields.nameInitials,
        fields.gender,
        fields.age,
        fields.identifyId,
        fields.phone,
        fields.address,
        fields.occupation,
        creator,
        dateJoined,
        dateJoined
      ]
    )
    created = { ...fields, user: id, creator: creator ?? id, createTime: dateJoined, modifyTime: dateJoined }
  }
  const user: UserRow = { id, ...account, isActive: true, dateJoined, lastLogin: null, version: 1 }
  // The first version is the one inserted: nobody else can have changed an uncommitted row.
  return { user, profile: created, fact: userFact(user, creator ?? id) }
}

/**
 * Writes the caller's pending changes of the user, raises its version and answers the fact of the change, as
 * the row now is. Raw: the version is raised and read in one statement (`update … returning`) under the row
 * lock, so concurrent changes of one user get increasing versions in commit order; MikroORM's update answers
 * a count only.
 */
export async function nextFact(em: EntityManager, id: number, actor: number | null): Promise<UserFact> {
  await em.flush()
  const [row] = await sql<Pick<UserRow, 'id' | 'username' | 'isStaff' | 'isActive' | 'version'>>(
    em,
    `update app_user set version = version + 1 where id = ?
     returning id, username, is_staff as "isStaff", is_active as "isActive", version`,
    [id]
  )
  return userFact(row, actor)
}

/** The user's current fact (internal read-through), or null. */
export async function currentFact(em: EntityManager, id: number): Promise<UserFact | null> {
  const user = await em.findOne(
    UserEntity,
    { id },
    { fields: ['id', 'username', 'isStaff', 'isActive', 'version'], disableIdentityMap: true }
  )
  return user ? userFact(user, null) : null
}

/** Deletes the user; the profile, sessions and memberships go with it (foreign keys `on delete cascade`). */
export async function remove(em: EntityManager, id: number): Promise<void> {
  await em.nativeDelete(UserEntity, { id })
}

/** Clears a deleted occupation from every profile that had it. */
export async function clearOccupation(em: EntityManager, occupationId: number): Promise<void> {
  await em.nativeUpdate(ProfileEntity, { occupation: occupationId }, { occupation: null, modifyTime: new Date() })
}
