import type { FastifyBaseLogger } from 'fastify'
import { PUBLIC_ROUTES, openApiPath } from '@roster/contracts'
import type { Upstream } from './routing.js'

// `GET /api/users/{pk}/` → its owner: exactly the operations the gateway forwards are documented.
const OWNERS = new Map(PUBLIC_ROUTES.map((r) => [`${r.method.toLowerCase()} ${openApiPath(r.path)}`, r.owner]))

const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'])

type Components = Record<'schemas' | 'responses' | 'headers' | 'parameters', Record<string, unknown> | undefined>
type Doc = { paths?: Record<string, unknown>; components?: Partial<Components>; tags?: { name: string }[] }
const COMPONENT_KINDS = ['schemas', 'responses', 'headers', 'parameters'] as const

/**
 * The merged OpenAPI document: each service's `/docs/json` (served on the service's internal listener, so
 * the base URLs here are the `*_INTERNAL_URL`s), keeping only the operations the gateway forwards to that
 * service (`PUBLIC_ROUTES`), with their components (schemas, responses, headers, parameters) merged. Refreshed in the background so `/docs/json`
 * never waits on a service.
 */
export class MergedDocs {
  private docs = new Map<Upstream, Doc>()

  constructor(
    private readonly upstreams: Record<Upstream, string>,
    private readonly log: FastifyBaseLogger
  ) {}

  async refresh(): Promise<void> {
    await Promise.all(
      (Object.entries(this.upstreams) as [Upstream, string][]).map(async ([name, base]) => {
        try {
          const response = await fetch(new URL('/docs/json', base), { signal: AbortSignal.timeout(2000) })
          if (response.ok) this.docs.set(name, (await response.json()) as Doc)
        } catch (error) {
          this.log.debug({ err: error, upstream: name }, 'could not fetch OpenAPI document')
        }
      })
    )
  }

  merge(own: Doc): Doc {
    const merged = structuredClone(own)
    merged.paths = Object.fromEntries(Object.entries(merged.paths ?? {}).filter(([path]) => !path.startsWith('/api')))
    merged.components ??= {}
    for (const kind of COMPONENT_KINDS) merged.components[kind] ??= {}
    const tags = new Map((merged.tags ?? []).map((t) => [t.name, t]))
    for (const [name, doc] of this.docs) {
      for (const [path, item] of Object.entries(doc.paths ?? {})) {
        const kept = Object.entries(item as Record<string, unknown>).filter(
          ([key]) => !METHODS.has(key) || OWNERS.get(`${key} ${path}`) === name
        )
        if (kept.some(([key]) => METHODS.has(key))) merged.paths[path] = Object.fromEntries(kept)
      }
      // The services' documents are completed by the same kit code, so a component of one name is the same everywhere.
      for (const kind of COMPONENT_KINDS) Object.assign(merged.components[kind]!, doc.components?.[kind] ?? {})
      for (const tag of doc.tags ?? []) tags.set(tag.name, tag)
    }
    merged.tags = [...tags.values()]
    return merged
  }
}
