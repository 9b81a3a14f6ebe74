import type { EntityManager } from '@mikro-orm/postgresql'
import type { User, ProfileInput, ProfilePatch, UserListQuery } from '@roster/contracts'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { formatTime, likePattern, preparedQuery, setPageHeaders, type Page } from '@roster/service-kit'
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
 * One page of user ids matching the filters, ascending, and the total count. Each filter is a
 * condition on `app_user` alone (profile and membership filters as semi-joins), so the page is read in
 * primary-key order and `search` is answered by the two trigram indexes, one per table.
 */
export async function searchUserIds(em: EntityManager, filter: UserFilter, page: Page): Promise<{ ids: number[]; total: number }> {
  const where: string[] = []
  const params: unknown[] = []
  if (filter.search) {
    const pattern = likePattern(filter.search)
    // A union rather than `or`, so that each side is answered by its own trigram index.
    where.push(
      `u.id in (select id from app_user where username ilike ? union select p.user_id from profile p
        where (p.name || '|' || p.name_pinyin || '|' || p.name_initials || '|' || p.phone) ilike ?)`
    )
    params.push(pattern, pattern)
  }
  const profile: string[] = []
  if (filter.occupation !== undefined) {
    profile.push('p.occupation_id = ?')
    params.push(filter.occupation)
  }
  if (filter.gender !== undefined) {
    profile.push('p.gender = ?')
    params.push(filter.gender)
  }
  if (profile.length) where.push(`u.id in (select p.user_id from profile p where ${profile.join(' and ')})`)
  if (filter.is_active !== undefined) {
    where.push('u.is_active = ?')
    params.push(filter.is_active)
  }
  for (const group of [filter.group, filter.memberOf]) {
    if (group === undefined) continue
    where.push('u.id in (select m.user_id from membership m where m.group_id = ?)')
    params.push(group)
  }
  const clause = where.length ? `where ${where.join(' and ')}` : ''
  const connection = em.getConnection()
  const [rows, [count]] = await Promise.all([
    connection.execute<{ id: number }[]>(`select u.id from app_user u ${clause} order by u.id limit ? offset ?`, [
      ...params,
      page.limit,
      page.offset
    ]),
    // Unfiltered, the total is kept by triggers (see the migrations): counting a million rows per page is not.
    where.length
      ? connection.execute<{ total: string }[]>(`select count(*) as total from app_user u ${clause}`, params)
      : connection.execute<{ total: string }[]>('select total from app_user_total')
  ])
  return { ids: rows.map((r) => r.id), total: Number(count.total) }
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
  const { ids, total } = await searchUserIds(request.em, filter, page)
  setPageHeaders(request, reply, total, page)
  return loadUsers(request.em, ids, timeZone)
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
