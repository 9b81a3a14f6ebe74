import type { User } from '@roster/contracts'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { setPageHeaders, type Page } from '@roster/service-kit'
import { loadUsers, searchUserIds, type UserFilter } from '../repositories/users.js'

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
