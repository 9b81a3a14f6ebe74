/** A service that owns public operations (ARCHITECTURE.md, "Routing follows ownership"). */
export type RouteOwner = 'identity' | 'directory' | 'audit'
export type RouteMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

export interface PublicRoute {
  method: RouteMethod
  /** Fastify's template: `:name` for a parameter, always with the trailing slash API.md writes. */
  path: string
  owner: RouteOwner
}

const ops = (owner: RouteOwner, path: string, methods: RouteMethod[]): PublicRoute[] => methods.map((method) => ({ method, path, owner }))

/**
 * Every public operation of API.md and the service that serves it, declared once: the gateway forwards
 * exactly these (anything else is its own 404) and merges exactly these from each service's OpenAPI
 * document. The member lists of groups and occupations are identity's, a user's log is audit's.
 */
export const PUBLIC_ROUTES: readonly PublicRoute[] = Object.freeze([
  ...ops('identity', '/api/users/', ['GET', 'POST']),
  ...ops('identity', '/api/users/:pk/', ['GET', 'PUT', 'PATCH', 'DELETE']),
  ...ops('identity', '/api/users/:pk/groups/', ['GET']),
  ...ops('audit', '/api/users/:pk/user-logs/', ['GET']),
  ...ops('identity', '/api/auth/', ['POST']),
  ...ops('identity', '/api/auth/refresh/', ['POST']),
  ...ops('identity', '/api/auth/logout/', ['GET', 'POST']),
  ...ops('identity', '/api/auth/jwks/', ['GET']),
  ...ops('directory', '/api/groups/', ['GET', 'POST']),
  ...ops('directory', '/api/groups/:pk/', ['GET', 'PUT', 'PATCH', 'DELETE']),
  ...ops('identity', '/api/groups/:pk/users/', ['GET', 'POST']),
  ...ops('identity', '/api/groups/:pk/users/:user_pk/', ['DELETE']),
  ...ops('directory', '/api/occupations/', ['GET', 'POST']),
  ...ops('directory', '/api/occupations/:pk/', ['GET', 'PUT', 'PATCH', 'DELETE']),
  ...ops('identity', '/api/occupations/:pk/users/', ['GET']),
  ...ops('audit', '/api/user-logs/', ['GET']),
  ...ops('audit', '/api/user-logs/:pk/', ['GET']),
  ...ops('audit', '/api/black-list/', ['GET', 'POST']),
  ...ops('audit', '/api/black-list/:pk/', ['GET', 'PUT', 'PATCH', 'DELETE'])
])

/** `/api/users/:pk/` as OpenAPI writes it: `/api/users/{pk}/`. */
export function openApiPath(template: string): string {
  return template.replace(/:(\w+)/g, '{$1}')
}
