/** A service that owns public operations (ARCHITECTURE.md, "Routing follows ownership"). */
export type RouteOwner = 'identity' | 'directory' | 'audit'
export type RouteMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

export interface PublicRoute {
  method: RouteMethod
  /** Fastify's template: `:name` for a parameter, always with the trailing slash API.md writes. */
  path: string
  owner: RouteOwner
  /** The OpenAPI `operationId`: the method name generated clients get, so it never changes once published. */
  operationId: string
  /** The operation's Chinese title, from the Chinese API document where it has one. */
  title: string
}

const op = (owner: RouteOwner, method: RouteMethod, path: string, operationId: string, title: string): PublicRoute =>
  Object.freeze({ method, path, owner, operationId, title })

/**
 * Every public operation of API.md and the service that serves it, declared once: the gateway forwards
 * exactly these (anything else is its own 404) and merges exactly these from each service's OpenAPI
 * document, where each gets its `operationId` and Chinese title from here. The member lists of groups and
 * occupations are identity's, a user's log is audit's.
 */
export const PUBLIC_ROUTES: readonly PublicRoute[] = Object.freeze([
  op('identity', 'GET', '/api/users/', 'listUsers', '所有用户信息'),
  op('identity', 'POST', '/api/users/', 'registerUser', '用户注册'),
  op('identity', 'GET', '/api/users/:pk/', 'getUser', '某一个用户的信息'),
  op('identity', 'PUT', '/api/users/:pk/', 'replaceUser', '更新某个用户信息'),
  op('identity', 'PATCH', '/api/users/:pk/', 'updateUser', '部分更新某个用户信息'),
  op('identity', 'DELETE', '/api/users/:pk/', 'deleteUser', '删除某个用户'),
  op('identity', 'GET', '/api/users/:pk/groups/', 'listUserGroups', '某个用户所属的所有组'),
  op('audit', 'GET', '/api/users/:pk/user-logs/', 'listUserLogsOfUser', '某个用户的所有登入登出记录'),
  op('identity', 'POST', '/api/auth/', 'login', '用户登录'),
  op('identity', 'POST', '/api/auth/refresh/', 'refreshToken', '刷新token'),
  op('identity', 'GET', '/api/auth/logout/', 'logout', '用户登出'),
  op('identity', 'POST', '/api/auth/logout/', 'logoutWithPost', '用户登出（POST）'),
  op('identity', 'GET', '/api/auth/jwks/', 'getJwks', '验证令牌的公钥（JWKS）'),
  op('directory', 'GET', '/api/groups/', 'listGroups', '所有组别信息'),
  op('directory', 'POST', '/api/groups/', 'createGroup', '添加组'),
  op('directory', 'GET', '/api/groups/:pk/', 'getGroup', '某一个组的详细信息'),
  op('directory', 'PUT', '/api/groups/:pk/', 'replaceGroup', '修改某个组的信息'),
  op('directory', 'PATCH', '/api/groups/:pk/', 'updateGroup', '部分修改某个组的信息'),
  op('directory', 'DELETE', '/api/groups/:pk/', 'deleteGroup', '删除某个组'),
  op('identity', 'GET', '/api/groups/:pk/users/', 'listGroupMembers', '某个组下的所有用户信息'),
  op('identity', 'POST', '/api/groups/:pk/users/', 'addGroupMembers', '向某个组添加用户'),
  op('identity', 'DELETE', '/api/groups/:pk/users/:user_pk/', 'removeGroupMember', '从某个组移除用户'),
  op('directory', 'GET', '/api/occupations/', 'listOccupations', '所有职业'),
  op('directory', 'POST', '/api/occupations/', 'createOccupation', '创建职业'),
  op('directory', 'GET', '/api/occupations/:pk/', 'getOccupation', '某个职业'),
  op('directory', 'PUT', '/api/occupations/:pk/', 'replaceOccupation', '更改某个职业'),
  op('directory', 'PATCH', '/api/occupations/:pk/', 'updateOccupation', '部分更改某个职业'),
  op('directory', 'DELETE', '/api/occupations/:pk/', 'deleteOccupation', '删除某个职业'),
  op('identity', 'GET', '/api/occupations/:pk/users/', 'listOccupationUsers', '某个职业下的所有用户'),
  op('audit', 'GET', '/api/user-logs/', 'listUserLogs', '所有登入登出记录'),
  op('audit', 'GET', '/api/user-logs/:pk/', 'getUserLog', '某条登入或登出记录'),
  op('audit', 'GET', '/api/black-list/', 'listBlackList', '所有病人黑名单'),
  op('audit', 'POST', '/api/black-list/', 'createBlackListEntry', '将病人加入黑名单'),
  op('audit', 'GET', '/api/black-list/:pk/', 'getBlackListEntry', '某条病人黑名单记录'),
  op('audit', 'PUT', '/api/black-list/:pk/', 'replaceBlackListEntry', '修改病人黑名单记录'),
  op('audit', 'PATCH', '/api/black-list/:pk/', 'updateBlackListEntry', '部分修改病人黑名单记录'),
  op('audit', 'DELETE', '/api/black-list/:pk/', 'deleteBlackListEntry', '将病人移出黑名单')
])

/**
 * Every internal operation (never routed by the gateway, served on each owner's internal listener only): the
 * read-throughs where an owner answers a replica's miss with the same fact an event would carry, or 404.
 */
export const INTERNAL_ROUTES: readonly InternalRoute[] = Object.freeze([
  Object.freeze({ method: 'GET', path: '/internal/users/:pk', owner: 'identity', name: 'userFact' } as const),
  Object.freeze({
    method: 'GET',
    path: '/internal/occupations/:pk',
    owner: 'directory',
    name: 'occupationFact'
  } as const),
  Object.freeze({ method: 'GET', path: '/internal/groups/:pk', owner: 'directory', name: 'groupFact' } as const)
])

export interface InternalRoute {
  method: 'GET'
  path: string
  owner: RouteOwner
  name: 'userFact' | 'occupationFact' | 'groupFact'
}

const byOperation = new Map<string, PublicRoute>(PUBLIC_ROUTES.map((r) => [r.operationId, r]))

/** The path template of a public operation by its `operationId`: what its owner registers (`publicPath('getUser')`). */
export function publicPath(operationId: string): string {
  const route = byOperation.get(operationId)
  if (!route) throw new Error(`no public operation ${operationId}`)
  return route.path
}

/** The path template of an internal operation: what its owner registers. */
export function internalPath(name: InternalRoute['name']): string {
  return INTERNAL_ROUTES.find((r) => r.name === name)!.path
}

/** The routes a service must register, public and internal, as `GET /api/users/:pk/`. */
export function routesOwnedBy(owner: RouteOwner): string[] {
  return [...PUBLIC_ROUTES, ...INTERNAL_ROUTES].filter((r) => r.owner === owner).map((r) => `${r.method} ${r.path}`)
}

/** `/api/users/:pk/` as OpenAPI writes it: `/api/users/{pk}/`. */
export function openApiPath(template: string): string {
  return template.replace(/:(\w+)/g, '{$1}')
}

/** The public operation at `GET /api/users/{pk}/` (OpenAPI's spelling), if there is one. */
export function publicOperation(method: string, openApiTemplate: string): PublicRoute | undefined {
  return OPERATIONS.get(`${method.toUpperCase()} ${openApiTemplate}`)
}
const OPERATIONS = new Map(PUBLIC_ROUTES.map((r) => [`${r.method} ${openApiPath(r.path)}`, r]))
