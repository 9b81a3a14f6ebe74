import t from 'tap'
import { request } from 'node:http'
import { ADMIN, client, startE2E } from './helper.js'

// It starts the services as processes: a budget of its own that fits a machine twice as slow as a loaded
// one of this kind (tap's default of 120 s per file does not).
t.setTimeout(300_000)

/** One request with its path as given (Node's client sends it as is, like `curl --path-as-is`); answers status and body. */
function raw(base: string, method: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base)
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port: Number(port), method, path, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') })
        res.socket.destroy()
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

// What only an internal answer would contain: a user fact, Prometheus output, readiness checks, an OpenAPI document.
const INTERNAL_CONTENT =
  /"user_id"|"occupation_id"|"group_id"|process_cpu|http_request_duration|"checks"|"openapi"|swagger/i

t.test('nothing internal is reachable from outside, through the gateway or on a public port', async (t) => {
  const system = await startE2E(t, ['identity', 'directory', 'audit', 'gateway'])
  const api = client(system.gatewayUrl!)
  const { access } = (await api('POST', '/api/auth/', { body: ADMIN })).json
  const occupation = (await api('POST', '/api/occupations/', { token: access, body: { name: 'porter' } })).json
  const targets = ['/internal/users/1', `/internal/occupations/${occupation.id}`, '/metrics', '/ready', '/docs/json']

  // The trick and its variants, sent as is, toward every internal route of every service.
  const tricks = (target: string) => {
    const rest = target.slice(1)
    return [
      `/api/users/x\\..\\..\\..\\${rest.replaceAll('/', '\\')}`,
      `/api/users/x\\..\\..\\..\\${rest}`,
      `/api/users/x/../../${rest}`,
      `/api/users/x/%2e%2e/%2e%2e/${rest}`,
      `/api/users/x%2F..%2F..%2F${rest.replaceAll('/', '%2F')}`,
      `/api/groups/1/..\\..\\..\\${rest}`,
      `/api/black-list/x\\..\\..\\${rest}`,
      `/api/occupations/1/users/..\\..\\..\\..\\${rest}`,
      // The gateway's own `/docs/json` is the public merged document; its `/metrics` and `/ready` are internal.
      ...(target === '/docs/json' ? [] : [`//${rest}`, `/${rest}`])
    ]
  }
  let sent = 0
  for (const target of targets) {
    for (const path of tricks(target)) {
      for (const method of ['GET', 'HEAD']) {
        const answer = await raw(system.gatewayUrl!, method, path)
        sent++
        t.ok(answer.status >= 400 && answer.status < 500, `${method} ${path} through the gateway: ${answer.status}`)
        t.notMatch(answer.body, INTERNAL_CONTENT, `${method} ${path} reveals nothing internal`)
      }
    }
  }
  t.comment(`${sent} attempts through the gateway`)

  // The second wall: each process's public port has no internal route at all; its internal port has them.
  const own: Record<string, string[]> = {
    identity: ['/internal/users/1', '/metrics', '/ready', '/docs/json'],
    directory: [`/internal/occupations/${occupation.id}`, '/metrics', '/ready', '/docs/json'],
    audit: ['/metrics', '/ready', '/docs/json'],
    gateway: ['/metrics', '/ready']
  }
  for (const [service, paths] of Object.entries(own)) {
    const publicUrl = system.urls[service as keyof typeof system.urls]!
    const internalUrl = system.internalUrls[service as keyof typeof system.internalUrls]!
    for (const path of paths) {
      const outside = await raw(publicUrl, 'GET', path)
      t.equal(outside.status, 404, `${service} public ${path}`)
      t.same(JSON.parse(outside.body), { detail: '未找到。' }, `${service} public ${path}: the DRF shape`)
      t.equal((await raw(internalUrl, 'GET', path)).status, 200, `${service} internal ${path}`)
    }
  }

  // The merged public docs still hold every service's API (read from their internal ports) and nothing internal.
  const docs = await api('GET', '/docs/json')
  t.equal(docs.status, 200)
  for (const path of ['/api/users/', '/api/groups/', '/api/black-list/'])
    t.ok(docs.json.paths[path], `merged docs have ${path}`)
  t.notOk(
    Object.keys(docs.json.paths).some((p) => /^\/(internal|metrics|ready)/.test(p)),
    'and nothing internal'
  )
})
