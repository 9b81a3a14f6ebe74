import t from 'tap'
import fc from 'fast-check'
import { startE2E, client, ADMIN } from './helper.js'

// It starts the services as processes: a budget of its own that fits a machine twice as slow as a loaded
// one of this kind (tap's default of 120 s per file does not).
t.setTimeout(300_000)

// Bad input of every kind, through the gateway, against every write and a few reads: the answer is always
// a 2xx or a 4xx in the API's shape, never a 5xx, and what was stored before is still there afterwards.
const anything = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.constantFrom(
      '',
      ' ',
      '\u0000',
      '张三',
      '1'.repeat(300),
      '100000190001010001',
      '18888888888',
      'a@b.cn',
      '-1',
      '99999999999'
    ),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('name', 'age', 'gender', 'phone', 'x', 'profile', 'users'), tie('value'), {
      maxKeys: 3
    })
  )
})).value

const fields = (keys: string[]) => fc.dictionary(fc.constantFrom(...keys), anything, { maxKeys: keys.length })

function shapeOk(status: number, json: any): boolean {
  if (status >= 500) return false
  if (status < 400) return true
  return json !== null && typeof json === 'object' && !Array.isArray(json) && Object.keys(json).length > 0
}

t.test('fuzzed bodies, paths and queries never make a 500', async (t) => {
  const system = await startE2E(t, ['identity', 'directory', 'audit', 'gateway'])
  const api = client(system.gatewayUrl!)
  const admin = (await api('POST', '/api/auth/', { body: ADMIN })).json.access
  const keep = (
    await api('POST', '/api/users/', {
      body: {
        username: 'keep',
        password: 'password1',
        profile: { name: '张三', gender: 0, age: 20, identify_id: '100000190001010001' }
      }
    })
  ).json
  const group = (await api('POST', '/api/groups/', { token: admin, body: { name: 'keep' } })).json

  const profileKeys = ['name', 'gender', 'age', 'identify_id', 'phone', 'address', 'occupation']
  const targets: [string, string, fc.Arbitrary<unknown>][] = [
    [
      'POST',
      '/api/users/',
      fc.oneof(
        anything,
        fields(['username', 'password', 'email', 'profile']),
        fc.record({ username: fc.string(), password: fc.string(), profile: fields(profileKeys) })
      )
    ],
    [
      'PATCH',
      `/api/users/${keep.id}/`,
      fc.oneof(
        anything,
        fields(['email', 'password', 'old_password', 'is_staff', 'is_active', 'profile']),
        fc.record({ profile: fields(profileKeys) })
      )
    ],
    ['PUT', `/api/users/${keep.id}/`, fields(['email', 'password', 'profile'])],
    ['POST', '/api/auth/', fc.oneof(anything, fields(['username', 'password']))],
    ['POST', '/api/auth/refresh/', fc.oneof(anything, fields(['refresh']))],
    [
      'POST',
      '/api/groups/',
      fc.oneof(
        anything,
        fields(['name', 'profile']),
        fc.record({ name: fc.string(), profile: fields(['location', 'contact_phone']) })
      )
    ],
    ['PATCH', `/api/groups/${group.id}/`, fields(['name', 'profile'])],
    ['POST', `/api/groups/${group.id}/users/`, fc.oneof(anything, fields(['users']))],
    ['POST', '/api/occupations/', fc.oneof(anything, fields(['name']))],
    ['POST', '/api/black-list/', fc.oneof(anything, fields(['patient', 'reason']))]
  ]
  for (const [method, path, body] of targets) {
    await fc.assert(
      fc.asyncProperty(body, async (payload) => {
        const res = await api(method, path, { token: admin, body: payload })
        return shapeOk(res.status, res.json)
      }),
      { numRuns: 40, seed: 20261124 }
    )
    t.pass(`${method} ${path}`)
  }

  const segment = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.constantFrom('0', '-1', '1e3', '99999999999', '%00', '..', 'abc')
  )
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('users', 'groups', 'occupations', 'user-logs', 'black-list'),
      segment,
      fc.string({ maxLength: 30 }),
      async (resource, id, query) => {
        const res = await api(
          'GET',
          `/api/${resource}/${encodeURIComponent(id)}/?${encodeURIComponent('limit')}=${encodeURIComponent(query)}&search=${encodeURIComponent(query)}`,
          { token: admin }
        )
        return shapeOk(res.status, res.json)
      }
    ),
    { numRuns: 80, seed: 20261124 }
  )
  t.pass('fuzzed ids and queries')

  // Every documented filter of every list, with values of every kind.
  const filters: Record<string, string[]> = {
    '/api/users/': ['search', 'occupation', 'group', 'gender', 'is_active', 'limit', 'offset'],
    '/api/groups/': ['search', 'limit', 'offset'],
    '/api/occupations/': ['search', 'limit', 'offset'],
    '/api/user-logs/': ['user', 'operation', 'since', 'until', 'limit', 'offset'],
    [`/api/users/${keep.id}/user-logs/`]: ['operation', 'since', 'until', 'limit', 'offset'],
    '/api/black-list/': ['patient', 'include_deleted', 'limit', 'offset']
  }
  const value = fc.oneof(
    fc.string({ maxLength: 20 }),
    fc.integer().map(String),
    fc.constantFrom(
      '',
      'true',
      'false',
      '1',
      '0',
      '-1',
      '2',
      '1001',
      '2026-11-24T00:00:00+08:00',
      '2026-13-01',
      'now',
      '1e2',
      'null',
      '%'
    )
  )
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...Object.keys(filters)),
      fc.array(fc.tuple(fc.nat(), value), { maxLength: 4 }),
      async (path, pairs) => {
        const names = filters[path]
        const query = new URLSearchParams(
          pairs.map(([i, v]): [string, string] => [names[i % names.length], v])
        ).toString()
        const res = await api('GET', `${path}?${query}`, { token: admin })
        return shapeOk(res.status, res.json) && (res.status !== 200 || Array.isArray(res.json))
      }
    ),
    { numRuns: 120, seed: 20261124 }
  )
  t.pass('fuzzed list filters')

  const raw = await fetch(`${system.gatewayUrl}/api/users/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"username": "x", "password": "\\ud800"'
  })
  t.ok(raw.status >= 400 && raw.status < 500, 'broken JSON is a 4xx')

  const still = await api('GET', `/api/users/${keep.id}/`, { token: admin })
  t.equal(still.status, 200)
  t.equal(still.json.username, 'keep', 'what was stored is still there')
})
