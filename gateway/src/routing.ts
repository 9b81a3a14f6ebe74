import { PUBLIC_ROUTES, type RouteMethod, type RouteOwner } from '@roster/contracts'

export type Upstream = RouteOwner

export interface ProxyRoute {
  /** Fastify's template, e.g. `/api/users/:pk/`. */
  path: string
  owner: Upstream
  methods: RouteMethod[]
}

/** The public routes grouped by path: what the gateway registers, one Fastify route per template. */
export function proxyRoutes(): ProxyRoute[] {
  const byPath = new Map<string, ProxyRoute>()
  for (const { method, path, owner } of PUBLIC_ROUTES) {
    const route = byPath.get(path) ?? { path, owner, methods: [] }
    if (route.owner !== owner) throw new Error(`${path} is declared for ${route.owner} and ${owner}`)
    route.methods.push(method)
    byPath.set(path, route)
  }
  return [...byPath.values()]
}

/**
 * The only paths the gateway forwards: `/api` then segments of ASCII letters, digits, `-` and `_`, with at
 * most one trailing slash. No `%` (so no encoded slash, dot, backslash or NUL, in any case or depth), no
 * `.` (so no dot segment), no `\`, `;`, control or non-ASCII character, no empty segment: whatever an
 * upstream, undici or a proxy in between might decode or normalize differs from what was routed here.
 */
const CANONICAL = /^\/api(?:\/[A-Za-z0-9_-]+)+\/?$/

/** The path of a raw request target if it is canonical, else null. */
export function canonicalPath(url: string): string | null {
  const end = url.indexOf('?')
  const path = end === -1 ? url : url.slice(0, end)
  return CANONICAL.test(path) ? path : null
}

// RFC 3986 query characters; anything else (`\`, `"`, `<`, `|`, …) is percent-encoded before forwarding.
const QUERY_UNSAFE = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]/g

/** The raw query of a request target (no `?`), with characters outside RFC 3986 percent-encoded. */
export function forwardedQuery(url: string): string {
  const start = url.indexOf('?')
  if (start === -1) return ''
  return url
    .slice(start + 1)
    .replace(/#.*$/s, '')
    .replace(QUERY_UNSAFE, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'))
}

const MATCHERS = proxyRoutes().map(({ path, owner }) => ({
  pattern: new RegExp('^' + path.replace(/:\w+/g, '[A-Za-z0-9_-]+').replace(/\/$/, '/?') + '$'),
  owner
}))

/** Which service owns a canonical public path (or an OpenAPI path with its parameters filled in). */
export function upstreamOf(path: string): Upstream | null {
  if (canonicalPath(path) === null) return null
  for (const { pattern, owner } of MATCHERS) if (pattern.test(path)) return owner
  return null
}
