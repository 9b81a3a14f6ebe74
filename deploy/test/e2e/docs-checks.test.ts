import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { loadConfig, lintFromString } from '@redocly/openapi-core'
import openapiTS, { astToString } from 'openapi-typescript'
import { Parser, DiagnosticSeverity } from '@asyncapi/parser'
import { Ajv } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { client, startE2E } from './helper.js'

// The documents the gateway serves, checked as a team that reads them would: the OpenAPI one linted with
// Redocly's recommended rules and turned into a typed client (openapi-typescript + openapi-fetch) whose
// program must type-check under `strict` and run against the system; the AsyncAPI one parsed and
// validated by the AsyncAPI project's own parser.

// It took 288 s of a 300 s budget with the machine loaded (stress-ng --cpu 2 beside other test runs).
t.setTimeout(600_000)

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..', '..')
const deployModules = join(root, 'deploy', 'node_modules')
const run = promisify(execFile)
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ??
  addFormatsModule) as unknown as (ajv: Ajv) => Ajv

t.test('the served documents: Redocly lint, a typed client, AsyncAPI', async (t) => {
  const system = await startE2E(t, ['identity', 'directory', 'audit', 'gateway'])
  const base = system.gatewayUrl!
  const api = client(base)
  // The merged document is complete once every service's paths are in it.
  let doc: any
  for (let i = 0; i < 100; i++) {
    doc = (await api('GET', '/docs/json')).json
    const paths = Object.keys(doc?.paths ?? {})
    if (['/api/users/', '/api/groups/', '/api/user-logs/'].every((p) => paths.includes(p))) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.ok(doc?.paths?.['/api/user-logs/'], 'the merged document has every service')

  t.test('Redocly recommended rules (trailing slashes allowed: redocly.yaml)', async (t) => {
    const config = await loadConfig({ configPath: join(root, 'redocly.yaml') })
    const problems = await lintFromString({
      source: JSON.stringify(doc, null, 2),
      absoluteRef: `${base}/docs/json`,
      config
    })
    const byRule = new Map<string, { severity: string; count: number; first: string[] }>()
    for (const p of problems) {
      const entry = byRule.get(p.ruleId) ?? { severity: p.severity, count: 0, first: [] }
      entry.count++
      if (entry.first.length < 3) entry.first.push(`${p.location[0]?.pointer ?? ''}: ${p.message}`)
      byRule.set(p.ruleId, entry)
    }
    const report = [...byRule].map(([rule, e]) => `${e.severity} ${rule} ×${e.count}\n    ${e.first.join('\n    ')}`)
    if (report.length > 0) t.comment(`${problems.length} problems:\n${report.join('\n')}`)
    t.equal(problems.length, 0, 'no lint errors or warnings')
  })

  t.test('every operation has an operationId, and every request body and JSON answer an example', async (t) => {
    const deref = (node: any): any => {
      for (let i = 0; i < 10 && node && typeof node.$ref === 'string'; i++) {
        node = node.$ref
          .slice(2)
          .split('/')
          .map((p: string) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
          .reduce((at: any, k: string) => at?.[k], doc)
      }
      return node
    }
    const hasExample = (media: any) =>
      media?.example !== undefined ||
      Object.keys(media?.examples ?? {}).length > 0 ||
      deref(media?.schema)?.example !== undefined
    const missing: string[] = []
    const noId: string[] = []
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      if (!path.startsWith('/api/')) continue
      for (const [method, raw] of Object.entries<any>(item)) {
        if (method === 'parameters') continue
        const op = deref(raw)
        if (!op.operationId) noId.push(`${method.toUpperCase()} ${path}`)
        const body = deref(op.requestBody)?.content?.['application/json']
        if (body && !hasExample(body)) missing.push(`${method.toUpperCase()} ${path} request body`)
        for (const [status, response] of Object.entries<any>(op.responses ?? {})) {
          const media = deref(response)?.content?.['application/json']
          if (media && !hasExample(media)) missing.push(`${method.toUpperCase()} ${path} ${status}`)
        }
      }
    }
    t.same(noId, [], `operations without operationId: ${noId.length}`)
    t.same(missing, [], `bodies and answers without an example: ${missing.length}`)
  })

  t.test('the statuses and headers every answer can have are documented', async (t) => {
    const deref = (node: any): any => {
      for (let i = 0; i < 10 && node && typeof node.$ref === 'string'; i++) {
        node = node.$ref
          .slice(2)
          .split('/')
          .map((p: string) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
          .reduce((at: any, k: string) => at?.[k], doc)
      }
      return node
    }
    const missing = new Map<string, string[]>()
    const note = (what: string, where: string) => missing.set(what, [...(missing.get(what) ?? []), where])
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      if (!path.startsWith('/api/')) continue
      for (const [method, raw] of Object.entries<any>(item)) {
        if (method === 'parameters') continue
        const op = deref(raw)
        const where = `${method.toUpperCase()} ${path}`
        const responses = op.responses ?? {}
        // Every operation: a refused method on its path, a flood guard, a malformed query or Host.
        for (const status of ['400', '405', '429']) if (!responses[status]) note(`${status} not documented`, where)
        if (op.requestBody)
          for (const status of ['413', '415']) if (!responses[status]) note(`${status} not documented (a body)`, where)
        for (const [status, rawResponse] of Object.entries<any>(responses)) {
          const headers = Object.keys(deref(rawResponse)?.headers ?? {}).map((h) => h.toLowerCase())
          if (!headers.includes('x-request-id')) note('X-Request-Id not documented', `${where} ${status}`)
          if (status === '401' && !headers.includes('www-authenticate'))
            note('WWW-Authenticate not documented on 401', where)
          if (status === '429' && !headers.includes('retry-after')) note('Retry-After not documented on 429', where)
        }
      }
    }
    const report = [...missing].map(
      ([what, where]) => `${what}: ${where.length} (${where.slice(0, 3).join(', ')}${where.length > 3 ? ', …' : ''})`
    )
    if (report.length > 0) t.comment(report.join('\n'))
    t.same(report, [], 'no undocumented status or header')
  })

  t.test(
    'openapi-typescript + openapi-fetch: a strict program type-checks and runs; null is not ignorable',
    async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'roster-client-'))
      t.after(() => rm(dir, { recursive: true, force: true }))
      // The generated client resolves openapi-fetch from here (the repo's own copy: nothing is installed).
      await mkdir(join(dir, 'node_modules'))
      await symlink(join(deployModules, 'openapi-fetch'), join(dir, 'node_modules', 'openapi-fetch'))
      await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
      const ast = await openapiTS(new URL(`${base}/docs/json`))
      await writeFile(join(dir, 'api.d.ts'), astToString(ast))

      await writeFile(join(dir, 'program.ts'), program(base))
      await writeFile(join(dir, 'unsafe.ts'), unsafeProgram(base))
      const tsc = (file: string) =>
        run(
          process.execPath,
          [
            join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
            '--strict',
            '--noEmit',
            '--target',
            'es2022',
            '--module',
            'nodenext',
            '--moduleResolution',
            'nodenext',
            '--lib',
            'es2022,dom',
            '--skipLibCheck',
            file
          ],
          { cwd: dir }
        )
          .then(() => '')
          .catch((error: { stdout?: string; message: string }) => error.stdout || error.message)

      const errors = await tsc('program.ts')
      t.equal(errors, '', 'the program type-checks under --strict')
      if (errors === '') {
        const { stdout } = await run(process.execPath, ['--import', 'tsx', join(dir, 'program.ts')], {
          cwd: root,
          timeout: 60_000
        }).catch((error) => {
          t.fail(`the program failed: ${error.stderr || error.message}`)
          return { stdout: '' }
        })
        t.match(stdout, /registered test1 \d+/, 'registered with the seed document example')
        t.match(stdout, /logged in/, 'logged in')
        t.match(stdout, /read itself: test1 name/, 'read itself')
        t.match(stdout, /groups: \d+/, 'listed groups')
        t.match(stdout, /field errors: username/, 'read a 400 field error')
      }
      const unsafe = await tsc('unsafe.ts')
      t.match(unsafe, /TS18047|possibly 'null'/, 'reading me.profile.name without a null check does not type-check')
    }
  )

  t.test('AsyncAPI document: served, linked, valid for the AsyncAPI parser', async (t) => {
    const res = await api('GET', '/docs/asyncapi.json')
    t.equal(res.status, 200, 'served next to the OpenAPI document')
    t.match(res.headers.get('content-type'), /^application\/json/)
    t.match(doc.info.description, /\/docs\/asyncapi\.json/, 'linked from the OpenAPI description that /docs/ shows')
    const { document, diagnostics } = await new Parser().parse(res.text)
    const serious = diagnostics.filter(
      (d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning
    )
    if (serious.length > 0) t.comment(serious.map((d) => `${d.code} ${d.path.join('.')}: ${d.message}`).join('\n'))
    t.ok(document, 'parsed')
    t.same(serious, [], 'no errors or warnings')
    if (!document) return
    t.equal(document.version(), '3.0.0')
    const addresses = document
      .channels()
      .all()
      .map((c) => c.address())
    for (const subject of [
      'directory.group.created',
      'directory.occupation.deleted',
      'identity.session.login',
      'identity.membership.removed'
    ]) {
      t.ok(addresses.includes(subject), `channel ${subject}`)
    }
    // Each example is a payload the schema accepts (the parser resolved the $refs into components).
    const ajv = new Ajv({ strict: false, allErrors: true })
    addFormats(ajv)
    for (const message of document.messages().all()) {
      t.ok(message.examples().length > 0, `${message.name()} has an example`)
      const validate = ajv.compile(message.payload()!.json() as object)
      for (const example of message.examples().all()) {
        t.ok(
          validate(example.payload()),
          `${message.name()}: its example matches its payload schema ${ajv.errorsText(validate.errors)}`
        )
      }
    }
    // The parser does refuse a broken document (so the check above can fail): a channel whose message
    // points nowhere.
    const broken = structuredClone(res.json)
    broken.channels.identitySessionLogin.messages.identitySessionLogin.$ref = '#/components/messages/nothing'
    const refused = await new Parser().parse(JSON.stringify(broken))
    t.ok(
      refused.diagnostics.some((d) => d.severity === DiagnosticSeverity.Error),
      'a dangling $ref is an error for the parser'
    )
    t.match(res.json.info.description, /msgID/)
    t.match(res.json.info.description, /[Dd]urable/)
    t.match(res.json.info.description, /[Oo]rder/)
  })
})

/** Register with the Chinese document's example, log in, read itself, list groups, read a 400's field errors. */
function program(base: string): string {
  return `import createClient from 'openapi-fetch'
import type { paths } from './api.js'

const api = createClient<paths>({ baseUrl: ${JSON.stringify(base)} })

const registered = await api.POST('/api/users/', {
  body: {
    username: 'test1',
    password: 'password1',
    email: 'email1@test.com',
    profile: { gender: 0, occupation: 34, age: 18, name: 'name', identify_id: '100000190001010001', phone: '18888888888', address: 'address1' }
  }
})
if (registered.data === undefined) throw new Error('registration failed: ' + registered.response.status)
const id: number = registered.data.id
console.log('registered', registered.data.username, id)

const login = await api.POST('/api/auth/', { body: { username: 'test1', password: 'password1' } })
if (login.data === undefined) throw new Error('login failed: ' + login.response.status)
const access: string = login.data.access
console.log('logged in')
const headers = { Authorization: 'Bearer ' + access }

const me = await api.GET('/api/users/{pk}/', { params: { path: { pk: id } }, headers })
if (me.data === undefined) throw new Error('read failed: ' + me.response.status)
const name: string = me.data.profile === null ? '(no profile)' : me.data.profile.name
console.log('read itself:', me.data.username, name)

const groups = await api.GET('/api/groups/', { headers })
if (groups.data === undefined) throw new Error('groups failed: ' + groups.response.status)
console.log('groups:', groups.data.length, 'of', groups.response.headers.get('x-total-count'))

const again = await api.POST('/api/users/', { body: { username: 'test1', password: 'password1', profile: { gender: 0, occupation: 34, age: 18, name: 'name', identify_id: '100000190001010001', phone: '18888888888', address: 'address1' } } })
if (again.response.status !== 400 || again.error === undefined) throw new Error('expected a 400, got ' + again.response.status)
const error = again.error
const fields: string[] = 'detail' in error ? [] : Object.keys(error)
const messages: string[] = 'detail' in error ? [String(error.detail)] : Object.values(error).flat().map(String)
console.log('field errors:', fields.join(','), messages.length > 0)
`
}

/** What crashes on a user without a profile: must not type-check. */
function unsafeProgram(base: string): string {
  return `import createClient from 'openapi-fetch'
import type { paths } from './api.js'

type User = paths['/api/users/{pk}/']['get']['responses'][200]['content']['application/json']
// The answer of GET /api/users/{pk}/ as the generated types describe it (the request's own typing aside).
declare const user: User
console.log(createClient<paths>({ baseUrl: ${JSON.stringify(base)} }) !== undefined, user.profile.name)
`
}
