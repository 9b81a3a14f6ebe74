export type Upstream = 'identity' | 'directory' | 'audit'

/**
 * Which service owns a path (ARCHITECTURE.md, "Routing follows ownership"). Order matters: the
 * member and user lists of groups and occupations live in identity, a user's log in audit.
 */
const RULES: [RegExp, Upstream][] = [
  [/^\/api\/users\/[^/]+\/user-logs\/?$/, 'audit'],
  [/^\/api\/users(\/|$)/, 'identity'],
  [/^\/api\/auth(\/|$)/, 'identity'],
  [/^\/api\/groups\/[^/]+\/users(\/|$)/, 'identity'],
  [/^\/api\/occupations\/[^/]+\/users\/?$/, 'identity'],
  [/^\/api\/(groups|occupations)(\/|$)/, 'directory'],
  [/^\/api\/(user-logs|black-list)(\/|$)/, 'audit']
]

export function upstreamOf(path: string): Upstream | null {
  const normalized = path.replace(/\/{2,}/g, '/')
  for (const [pattern, upstream] of RULES) if (pattern.test(normalized)) return upstream
  return null
}
