import t from 'tap'
import { eventually } from '@roster/service-kit/testing'
import { startE2E, client, ADMIN } from './helper.js'

// It starts the services as processes: a budget of its own that fits a machine twice as slow as a loaded
// one of this kind (tap's default of 120 s per file does not).
t.setTimeout(300_000)

t.test('groups, occupations and memberships across the three services', async (t) => {
  const system = await startE2E(t, ['identity', 'directory', 'audit', 'gateway'])
  const api = client(system.gatewayUrl!)
  const admin = (await api('POST', '/api/auth/', { body: ADMIN })).json.access

  const occupation = await api('POST', '/api/occupations/', { token: admin, body: { name: '护士' } })
  t.equal(occupation.status, 200, occupation.text)
  t.same(Object.keys(occupation.json).sort(), ['id', 'name'])

  // Registered at once with the new occupation: the replica may not have it yet, read-through covers it.
  const user = await api('POST', '/api/users/', {
    body: {
      username: 'nurse',
      password: 'password1',
      profile: { name: '王芳', gender: 0, age: 30, identify_id: '100000190001010001', occupation: occupation.json.id }
    }
  })
  t.equal(user.status, 200, user.text)
  t.equal(user.json.profile.occupation, occupation.json.id)

  const group = await api('POST', '/api/groups/', {
    token: admin,
    body: { name: '内科', profile: { location: '3F', contact_phone: '18888888881' } }
  })
  t.equal(group.status, 200, group.text)
  t.match(group.json, { name: '内科', profile: { location: '3F', contact_phone: '18888888881', group: group.json.id } })

  const added = await api('POST', `/api/groups/${group.json.id}/users/`, {
    token: admin,
    body: { users: [user.json.id] }
  })
  t.equal(added.status, 200, added.text)
  const members = await api('GET', `/api/groups/${group.json.id}/users/`, { token: admin })
  t.same(
    members.json.map((u: { id: number }) => u.id),
    [user.json.id]
  )
  const token = (await api('POST', '/api/auth/', { body: { username: 'nurse', password: 'password1' } })).json.access
  const groups = await api('GET', `/api/users/${user.json.id}/groups/`, { token })
  t.same(groups.json, [{ id: group.json.id, name: '内科', location: '3F', contact_phone: '18888888881' }])
  const holders = await api('GET', `/api/occupations/${occupation.json.id}/users/`, { token: admin })
  t.same(
    holders.json.map((u: { id: number }) => u.id),
    [user.json.id]
  )

  const deleted = await api('DELETE', `/api/occupations/${occupation.json.id}/`, { token: admin })
  t.equal(deleted.status, 200)
  const started = Date.now()
  await eventually(
    async () => (await api('GET', `/api/users/${user.json.id}/`, { token: admin })).json.profile.occupation === null,
    {
      timeoutMs: 30_000,
      intervalMs: 20
    }
  )
  t.ok(Date.now() - started < 1000, `the holder's occupation is null after ${Date.now() - started} ms`)

  t.equal((await api('DELETE', `/api/groups/${group.json.id}/`, { token: admin })).status, 200)
  await eventually(async () => (await api('GET', `/api/users/${user.json.id}/groups/`, { token })).json.length === 0, {
    timeoutMs: 30_000,
    intervalMs: 20
  })
  const intact = await api('GET', `/api/users/${user.json.id}/`, { token })
  t.equal(intact.status, 200, 'the user is intact')
  t.equal((await api('GET', `/api/groups/${group.json.id}/users/`, { token: admin })).status, 404)

  // The login and logout reach the audit log.
  t.equal((await api('GET', '/api/auth/logout/', { token })).status, 200)
  await eventually(
    async () => (await api('GET', `/api/users/${user.json.id}/user-logs/`, { token: admin })).json?.length === 2
  )
  const logs = await api('GET', `/api/users/${user.json.id}/user-logs/`, { token: admin })
  t.match(logs.json, [
    { operation: 1, user: user.json.id, ip: '127.0.0.1' },
    { operation: 0, user: user.json.id }
  ])

  const listed = await api('POST', '/api/black-list/', {
    token: admin,
    body: { patient: user.json.id, reason: '欠费' }
  })
  t.equal(listed.status, 200, listed.text)
  const check = await api('GET', `/api/black-list/?patient=${user.json.id}`, { token: admin })
  t.equal(check.json.length, 1)

  const docs = await api('GET', '/docs/json')
  for (const path of [
    '/api/groups/',
    '/api/occupations/{pk}/',
    '/api/user-logs/',
    '/api/black-list/{pk}/',
    '/api/users/{pk}/user-logs/'
  ]) {
    t.ok(docs.json.paths[path], `merged docs have ${path}`)
  }
})
