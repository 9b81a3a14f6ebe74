import t from 'tap'
import { eventually } from '@roster/service-kit/testing'
import { startE2E, client, ADMIN } from './helper.js'
import type { ServiceName } from '../../local/system.js'

// Roster holds resident ID numbers and phones. Whatever happens (registrations, logins, refreshes,
// failures, races that end in database errors), no process may write a password, a password hash, a
// token, an identify_id or a phone to its log. The whole log of every service and of the gateway is
// captured at the level deployments run at (info) and searched for every secret this test sent or got.

t.setTimeout(240_000)

interface Person {
  username: string
  password: string
  identify_id: string
  phone: string
}

const people: Person[] = Array.from({ length: 4 }, (_, i) => ({
  username: `logscan${i}`,
  password: `Pw-logscan-${i}-s3cr3t`,
  identify_id: `11010119900307${String(1000 + i * 37).slice(-4)}`.slice(0, 17) + String(i),
  phone: `1391234${String(5670 + i).padStart(4, '0')}`
}))

t.test('no password, hash, token, identify_id or phone in any log of a run', async (t) => {
  const logs = new Map<ServiceName, string[]>()
  const system = await startE2E(
    t,
    ['identity', 'directory', 'audit', 'gateway'],
    { LOG_LEVEL: 'info' },
    {
      onLog: (service, line) => {
        const lines = logs.get(service) ?? []
        lines.push(line)
        logs.set(service, lines)
      }
    }
  )
  const api = client(system.gatewayUrl!)
  const secrets = new Set<string>([ADMIN.password])
  const admin = (await api('POST', '/api/auth/', { body: ADMIN })).json
  secrets.add(admin.access).add(admin.refresh)

  // Registrations with every kind of personal data, then logins, refreshes and logouts.
  for (const person of people) {
    for (const value of Object.values(person)) if (value !== person.username) secrets.add(value)
    const registered = await api('POST', '/api/users/', {
      body: {
        username: person.username,
        password: person.password,
        email: `${person.username}@example.cn`,
        profile: { name: '李四', gender: 1, age: 33, identify_id: person.identify_id, phone: person.phone }
      }
    })
    t.equal(registered.status, 200, `${person.username} registers`)
    const login = await api('POST', '/api/auth/', { body: { username: person.username, password: person.password } })
    t.equal(login.status, 200, `${person.username} logs in`)
    secrets.add(login.json.access).add(login.json.refresh)
    const refreshed = await api('POST', '/api/auth/refresh/', { body: { refresh: login.json.refresh } })
    if (refreshed.json?.access) secrets.add(refreshed.json.access)
    if (refreshed.json?.refresh) secrets.add(refreshed.json.refresh)
    t.equal((await api('GET', `/api/users/${registered.json.id}/`, { token: login.json.access })).status, 200)
  }
  const [first, second] = people as [Person, Person]

  // Failures: a duplicate registration, wrong passwords, a bad token, a lone surrogate in a username.
  const wrongPassword = 'Wrong-password-9x7'
  secrets.add(wrongPassword)
  t.equal(
    (
      await api('POST', '/api/users/', {
        body: {
          username: first.username,
          password: first.password,
          profile: { name: '李四', gender: 1, age: 33, identify_id: first.identify_id, phone: first.phone }
        }
      })
    ).status,
    400,
    'a duplicate registration is refused'
  )
  t.equal(
    (await api('POST', '/api/auth/', { body: { username: first.username, password: wrongPassword } })).status,
    401,
    'a wrong password is refused'
  )
  await api('POST', '/api/auth/', { body: { username: `${second.username}\ud800`, password: second.password } })
  await api('GET', '/api/users/', { token: `${admin.access.slice(0, -4)}AAAA` })
  await api('POST', '/api/auth/refresh/', { body: { refresh: `${admin.refresh}x` } })
  secrets.add(`${admin.access.slice(0, -4)}AAAA`)

  // Races that end in database errors on the servers as they are: parallel duplicate registrations with
  // the same resident ID and phone, parallel profile creation, two users taking the same email at once.
  const raceId = '110101198001010019'
  const racePhone = '13700001111'
  const racePassword = 'Race-password-77'
  secrets.add(raceId).add(racePhone).add(racePassword)
  const raced = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      api('POST', '/api/users/', {
        body: {
          username: i % 2 === 0 ? 'logscan-race' : `logscan-race${i}`,
          password: racePassword,
          profile: { name: '王五', gender: 0, age: 40, identify_id: raceId, phone: racePhone }
        }
      })
    )
  )
  t.ok(
    raced.some((r) => r.status === 200),
    'one of the racing registrations succeeds'
  )
  const bare = await api('POST', '/api/users/', { body: { username: 'logscan-bare', password: racePassword } })
  const bareToken = (await api('POST', '/api/auth/', { body: { username: 'logscan-bare', password: racePassword } }))
    .json.access
  secrets.add(bareToken)
  const profileId = '110101197505050037'
  const profilePhone = '13611112222'
  secrets.add(profileId).add(profilePhone)
  await Promise.all(
    Array.from({ length: 10 }, () =>
      api('PATCH', `/api/users/${bare.json.id}/`, {
        token: bareToken,
        body: { profile: { name: '赵六', gender: 1, age: 50, identify_id: profileId, phone: profilePhone } }
      })
    )
  )
  const tokens = await Promise.all(
    people
      .slice(0, 2)
      .map(
        async (p) => (await api('POST', '/api/auth/', { body: { username: p.username, password: p.password } })).json
      )
  )
  for (const tk of tokens) secrets.add(tk.access).add(tk.refresh)
  const ids = await Promise.all(
    people
      .slice(0, 2)
      .map(async (p) => (await api('GET', `/api/users/?search=${p.username}`, { token: admin.access })).json[0].id)
  )
  await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      api('PATCH', `/api/users/${ids[i % 2]}/`, {
        token: tokens[i % 2].access,
        body: { email: 'logscan-same@example.cn' }
      })
    )
  )
  // Logouts end the sessions (their events reach audit).
  for (const tk of tokens) await api('GET', '/api/auth/logout/', { token: tk.access })

  // Everything the run caused has happened: audit has the logouts.
  await eventually(
    async () => {
      const res = await api('GET', `/api/users/${ids[0]}/user-logs/?operation=1`, { token: admin.access })
      return res.status === 200 && res.json.length > 0
    },
    { timeoutMs: 30_000, intervalMs: 200 }
  )
  // Stopping flushes what each process still had to write.
  await system.stop()

  const total = [...logs.values()].reduce((n, lines) => n + lines.length, 0)
  t.comment(
    `${total} log lines scanned (${[...logs].map(([s, l]) => `${s} ${l.length}`).join(', ')}) for ${secrets.size} secrets`
  )
  t.ok(logs.get('identity')?.length, 'identity logged something, so the scan reads real output')
  const found: string[] = []
  for (const [service, lines] of logs) {
    for (const line of lines) {
      if (/\$2[aby]\$\d\d\$/.test(line)) found.push(`${service}: a bcrypt hash in ${line.slice(0, 300)}`)
      for (const secret of secrets) {
        // A token's signature alone identifies it; the resident ID and phone also in the SQL parameter shape.
        const needles = secret.split('.').length === 3 ? [secret, secret.split('.')[2]!] : [secret]
        for (const needle of needles)
          if (line.includes(needle)) found.push(`${service}: ${needle.slice(0, 12)}… in ${line.slice(0, 300)}`)
      }
    }
  }
  t.same(found.slice(0, 20), [], `no secret in any log (${found.length} found)`)
})
