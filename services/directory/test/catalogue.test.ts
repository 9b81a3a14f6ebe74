import t from 'tap'
import { eventually } from '@roster/service-kit/testing'
import { buildApp } from '../src/app.js'
import { OCCUPATION_CATALOGUE } from '../src/domain/catalogue.js'
import { build, testConfig } from './helper.js'
import { SEED_PROFILE } from '@roster/identity/testing'

t.test('a new directory starts with the occupation catalogue, once', async (t) => {
  const sys = await build(t, { DIRECTORY_SEED_OCCUPATIONS: true })
  const { app, identity, admin, iso } = sys
  const list = async () =>
    (await app.inject({ method: 'GET', url: '/api/occupations/?limit=1000', headers: admin.headers })).json()

  const seeded = await list()
  t.equal(seeded.length, OCCUPATION_CATALOGUE.length)
  t.same(seeded[33], { id: 34, name: '助产士' }, 'ids follow the catalogue order')

  t.test("the seed document's registration example succeeds on a new system", async (t) => {
    // identity's replica learns the catalogue from the events (this identity has no read-through)
    await eventually(async () => {
      const [row] = await identity.orm.em
        .fork()
        .getConnection()
        .execute('select count(*)::int as n from occupation_replica')
      return row.n === OCCUPATION_CATALOGUE.length
    })
    const res = await identity.inject({
      method: 'POST',
      url: '/api/users/',
      payload: {
        username: 'test1',
        password: 'password1',
        email: 'email1@test.com',
        profile: { ...SEED_PROFILE, occupation: 34 }
      }
    })
    t.equal(res.statusCode, 200, res.body)
    t.equal(res.json().profile.occupation, 34)
  })

  t.test('a second replica starting at the same time adds nothing', async (t) => {
    const replicas = await Promise.all(
      [0, 1].map(() =>
        buildApp(testConfig(iso, { IDENTITY_URL: 'http://127.0.0.1:9', DIRECTORY_SEED_OCCUPATIONS: true }))
      )
    )
    t.teardown(() => Promise.all(replicas.map((r) => r.close())))
    await Promise.all(replicas.map((r) => r.ready()))
    t.equal((await list()).length, OCCUPATION_CATALOGUE.length)
  })

  t.test('a directory whose occupations were deleted is not filled again', async (t) => {
    for (const { id } of await list()) {
      const res = await app.inject({ method: 'DELETE', url: `/api/occupations/${id}/`, headers: admin.headers })
      t.equal(res.statusCode, 200)
    }
    const again = await buildApp(
      testConfig(iso, { IDENTITY_URL: 'http://127.0.0.1:9', DIRECTORY_SEED_OCCUPATIONS: true })
    )
    t.teardown(() => again.close())
    await again.ready()
    t.same(await list(), [])
  })
})
