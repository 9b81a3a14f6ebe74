import { createHash } from 'node:crypto'
import type { EntityManager } from '@mikro-orm/postgresql'
import type { User, ProfileInput, ProfilePatch, UserListQuery } from '@roster/contracts'
import type { FastifyReply, FastifyRequest } from 'fastify'
import {
  FieldErrors,
  formatTime,
  likePattern,
  listUrl,
  preparedQuery,
  setPageHeaders,
  type Page
} from '@roster/service-kit'
import type { ProfileRow, UserRow } from '../entities/index.js'
import { nameInitials, namePinyin } from './pinyin.js'

export function renderUser(user: UserRow, profile: ProfileRow | null | undefined, timeZone: string): User {
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
          create_time: formatTime(profile.createTime, timeZone),
          modify_time: formatTime(profile.modifyTime, timeZone),
          user: profile.user,
          occupation: profile.occupation,
          creator: profile.creator,
          modifier: profile.modifier
        }
      : null
  }
}

interface JoinedRow {
  id: number
  username: string
  email: string
  is_staff: boolean
  is_active: boolean
  p_user: number | null
  name: string
  name_pinyin: string
  gender: number
  age: number
  identify_id: string
  phone: string
  address: string
  occupation_id: number | null
  creator_id: number | null
  modifier_id: number | null
  create_ms: string | number
  modify_ms: string | number
}

const JOINED = `select u.id, u.username, u.email, u.is_staff, u.is_active, p.user_id as p_user, p.name, p.name_pinyin,
  p.gender, p.age, p.identify_id, p.phone, p.address, p.occupation_id, p.creator_id, p.modifier_id,
  extract(epoch from p.create_time) * 1000 as create_ms, extract(epoch from p.modify_time) * 1000 as modify_ms
  from app_user u left join profile p on p.user_id = u.id`

// Times leave SQL as epoch milliseconds: the driver hands timestamptz over as text in a format Date does not parse.
/**
 * Users with their profiles, in the order of `ids`, in one query. This is the hot read path (detail and
 * every list), so it skips the ORM's unit of work and maps rows straight to the representation.
 */
export async function loadUsers(em: EntityManager, ids: number[], timeZone: string): Promise<User[]> {
  if (ids.length === 0) return []
  const list = `{${ids.join(',')}}`
  // A named statement on pg directly (parsed and planned once per connection): identity's CPU per
  // GET /api/users/{pk}/ fell by about a third (see preparedQuery); inside a transaction, through its connection.
  const rows: JoinedRow[] = em.getTransactionContext()
    ? await em.getConnection().execute<JoinedRow[]>(`${JOINED} where u.id = any(?::int[])`, [list], 'all', em.getTransactionContext())
    : await preparedQuery<JoinedRow>(em, 'identity_load_users', `${JOINED} where u.id = any($1::int[])`, [list])
  const byId = new Map(rows.map((r) => [r.id, r]))
  return ids.flatMap((id) => {
    const r = byId.get(id)
    if (!r) return []
    return [
      {
        id: r.id,
        username: r.username,
        email: r.email,
        is_staff: r.is_staff,
        is_active: r.is_active,
        profile:
          r.p_user === null
            ? null
            : {
                age: r.age,
                name: r.name,
                name_pinyin: r.name_pinyin,
                gender: r.gender,
                identify_id: r.identify_id,
                phone: r.phone,
                address: r.address,
                create_time: formatTime(new Date(Number(r.create_ms)), timeZone),
                modify_time: formatTime(new Date(Number(r.modify_ms)), timeZone),
                user: r.p_user,
                occupation: r.occupation_id,
                creator: r.creator_id,
                modifier: r.modifier_id
              }
      }
    ]
  })
}

export function applyProfile(
  target: Partial<ProfileRow>,
  input: ProfileInput | ProfilePatch
): Partial<ProfileRow> {
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
 * (case-insensitive, every character literal), each field matched on its own. Up to two characters (`zs`,
 * `张三`), no trigram exists to look up, so the `user_search_grams` indexes (every 1- and 2-character piece
 * of each field, tagged with the field) answer; from three on, each field's trigram index does.
 */
function searchMatches(search: string, params: unknown[]): string {
  if ([...search].length <= 2) {
    params.push(search, search, search, search, search)
    return `select u.id from app_user u where user_search_grams('u', u.username) @> array['u' || lower(?)]
      union select p.user_id from profile p where ${PROFILE_GRAMS} &&
        array['n' || lower(?), 'p' || lower(?), 'i' || lower(?), 't' || lower(?)]`
  }
  const pattern = likePattern(search)
  params.push(pattern, pattern, pattern, pattern, pattern)
  return `select u.id from app_user u where u.username ilike ?
    union select p.user_id from profile p
      where p.name ilike ? or p.name_pinyin ilike ? or p.name_initials ilike ? or p.phone ilike ?`
}

/** The expression of the profile's search-grams index: it must be spelled exactly so to be used. */
const PROFILE_GRAMS = `user_search_grams('npit', p.name, p.name_pinyin, p.name_initials, p.phone)`

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
  if (!filter.search && (plain.counted <= 1)) {
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
    // The matching ids once, for both the count and the page: a search is not run twice. Searched alone,
    // the union of the fields' matches is the set (every profile has its user; no join back to app_user).
    const all = userConditions(filter)
    const matching =
      all.conditions.length === 1 && filter.search
        ? `select id from (${all.search}) s(id)`
        : `select u.id from app_user u ${whereOf(all.conditions)}`
    const [row] = await connection.execute<{ total: string; ids: number[] }[]>(
      `with matching as materialized (${matching})
       select (select count(*) from matching) as total,
              array(select u.id from matching u ${bound ? `where u.id ${bound.op} ?` : ''}
                    order by ${order} limit ? offset ?) as ids`,
      [...all.params, ...(bound ? [bound.id] : []), limit, offset]
    )
    ids = row.ids
    total = Number(row.total)
  }
  if (!cursor) return { ids, total }
  const more = ids.length > page.limit
  ids = ids.slice(0, page.limit)
  if (cursor.before !== undefined) ids.reverse()
  return { ids, total, more }
}

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

/** Whether a username with the same key (NFKC + case folding, see identifiers.ts) exists. */
export async function usernameTaken(em: EntityManager, key: string): Promise<boolean> {
  const rows = await em.getConnection().execute('select 1 from app_user where username_key = ?', [key])
  return rows.length > 0
}

export async function emailTaken(em: EntityManager, email: string, exceptUserId?: number): Promise<boolean> {
  if (!email) return false
  const rows = await em
    .getConnection()
    .execute('select 1 from app_user where lower(email) = lower(?) and id <> ?', [email, exceptUserId ?? 0])
  return rows.length > 0
}

/** Every user list: one page of matching users in full, with `X-Total-Count` and `Link` set. */
export async function usersPage(
  request: FastifyRequest,
  reply: FastifyReply,
  filter: UserFilter,
  page: Page,
  timeZone: string
): Promise<User[]> {
  // A cursor says where the page starts, so an offset beside it is a contradiction (looked for in the URL:
  // the parsed query has a default offset).
  if (filter.cursor !== undefined && new URLSearchParams(request.url.split('?')[1] ?? '').has('offset')) {
    new FieldErrors().add('cursor', 'invalid').throwIfAny()
  }
  const { ids, total, more } = await searchUserIds(request.em, filter, page)
  if (filter.cursor === undefined) setPageHeaders(request, reply, total, page)
  else setCursorHeaders(request, reply, total, decodeCursor(filter.cursor), ids, more ?? false)
  return loadUsers(request.em, ids, timeZone)
}

/**
 * A cursor page's headers: `X-Total-Count` as on every list, and `Link` with the cursors of the pages
 * either side. Going forward there is a previous page unless this is the first; `more` says whether the
 * query found one in the direction of travel.
 */
function setCursorHeaders(
  request: FastifyRequest,
  reply: FastifyReply,
  total: number,
  cursor: UserCursor,
  ids: number[],
  more: boolean
): void {
  reply.header('x-total-count', String(total))
  const link = (at: UserCursor, rel: string) =>
    `<${listUrl(request, { cursor: encodeCursor(at), offset: null })}>; rel="${rel}"`
  const backward = cursor.before !== undefined
  const first = ids[0]
  const last = ids[ids.length - 1]
  const links: string[] = []
  const hasNext = backward ? true : more
  const hasPrev = backward ? more : (cursor.after ?? 0) > 0
  // An empty page links to where it stands: before id X, the next page is after X - 1; after X, the previous
  // one is before X + 1.
  if (hasNext) links.push(link({ after: last ?? Math.max(0, (cursor.before ?? 1) - 1) }, 'next'))
  if (hasPrev) links.push(link({ before: first ?? Math.min(2147483647, (cursor.after ?? 0) + 1) }, 'prev'))
  if (links.length > 0) reply.header('link', links.join(', '))
}

/**
 * The fact `identity.user.created` / `updated` carries, read inside the writing transaction after its
 * flush: the version is raised under the row lock, so concurrent changes of one user get increasing
 * versions in commit order and each fact shows the row as its own transaction left it.
 */
export async function nextUserFact(em: EntityManager, id: number, actor: number | null) {
  const [row] = await em
    .getConnection()
    .execute<{ username: string; is_staff: boolean; is_active: boolean; version: number }[]>(
      'update app_user set version = version + 1 where id = ? returning username, is_staff, is_active, version',
      [id],
      'all',
      em.getTransactionContext()
    )
  return { user_id: id, username: row.username, is_staff: row.is_staff, is_active: row.is_active, version: row.version, actor }
}
