import t from 'tap'
import { build } from './helper.js'
import { statusCounts } from '@roster/service-kit/testing'

/**
 * Every write path of the directory run against itself and against deletion, many requests at once on the
 * real PostgreSQL: each answer is a 2xx or the 4xx that names what happened, and the data left behind is
 * consistent (one holder of a name, no profile of a deleted group, one event per committed change).
 */
const PARALLEL = 24

type Res = { statusCode: number; body: string; json(): any }

const statuses = statusCounts

t.test('directory write paths under concurrency', async (t) => {
  const { app, admin } = await build(t)
  const headers = { ...admin.headers, 'accept-language': 'en' }
  const sql = async <T = any>(text: string, params: unknown[] = []) =>
    (await app.orm.em.fork().getConnection().execute(text, params)) as T[]
  const events = async (subject: string, key: string, id: number) =>
    (
      await sql<{ n: number }>(
        `select count(*)::int as n from outbox_event where subject = ? and (payload->'data'->>'${key}')::int = ?`,
        [subject, id]
      )
    )[0].n
  const allowed = (t: { fail(message: string): unknown }, results: Res[], ok: number[]) => {
    for (const r of results) if (!ok.includes(r.statusCode)) t.fail(`unexpected ${r.statusCode}: ${r.body}`)
  }
  const UNIQUE = { name: ['This field must be unique.'] }

  for (const kind of ['groups', 'occupations'] as const) {
    const table = kind === 'groups' ? 'app_group' : 'occupation'
    const key = kind === 'groups' ? 'group_id' : 'occupation_id'
    const subject = kind === 'groups' ? 'directory.group' : 'directory.occupation'

    t.test(`${kind}: created with the same name at once`, async (t) => {
      const name = `same ${kind} ${Date.now()}`
      const results = await Promise.all(
        Array.from({ length: PARALLEL }, (_, i) =>
          app.inject({
            method: 'POST',
            url: `/api/${kind}/`,
            headers,
            payload:
              kind === 'groups'
                ? { name: i % 2 ? name : name.toUpperCase(), profile: { location: `l${i}` } }
                : { name: i % 2 ? name : name.toUpperCase() }
          })
        )
      )
      allowed(t, results, [200, 400])
      t.equal(statuses(results)[200], 1, 'one wins')
      for (const r of results.filter((r) => r.statusCode === 400)) t.same(r.json(), UNIQUE)
      const rows = await sql<{ id: number }>(`select id from ${table} where lower(name) = lower(?)`, [name])
      t.equal(rows.length, 1, 'one holder of the name')
      t.equal(await events(`${subject}.created`, key, rows[0].id), 1, 'one created event')
      const created = await sql<{ n: number }>(
        `select count(*)::int as n from outbox_event where subject = ? and payload->'data'->>'name' ilike ?`,
        [`${subject}.created`, name]
      )
      t.equal(created[0].n, 1, 'no event for a refused creation')
    })

    t.test(`${kind}: renamed to the same name at once`, async (t) => {
      const made = await Promise.all(
        Array.from({ length: PARALLEL }, (_, i) =>
          app.inject({
            method: 'POST',
            url: `/api/${kind}/`,
            headers,
            payload: { name: `${kind} rename ${Date.now()} ${i}` }
          })
        )
      )
      const target = `${kind} target ${Date.now()}`
      const results = await Promise.all(
        made.map((m, i) =>
          app.inject({
            method: i % 2 ? 'PUT' : 'PATCH',
            url: `/api/${kind}/${m.json().id}/`,
            headers,
            payload: { name: target }
          })
        )
      )
      allowed(t, results, [200, 400])
      t.equal(statuses(results)[200], 1, 'one wins')
      for (const r of results.filter((r) => r.statusCode === 400)) t.same(r.json(), UNIQUE)
      t.equal((await sql(`select id from ${table} where lower(name) = lower(?)`, [target])).length, 1)
    })

    t.test(`${kind}: changed, and deleted twice, at once`, async (t) => {
      const made = await Promise.all(
        Array.from({ length: PARALLEL / 4 }, (_, i) =>
          app.inject({
            method: 'POST',
            url: `/api/${kind}/`,
            headers,
            payload: { name: `${kind} doomed ${Date.now()} ${i}` }
          })
        )
      )
      const ids: number[] = made.map((m) => m.json().id)
      const work = ids.flatMap((id, i) => [
        app.inject({ method: 'DELETE', url: `/api/${kind}/${id}/`, headers }),
        app.inject({
          method: 'PATCH',
          url: `/api/${kind}/${id}/`,
          headers,
          payload:
            kind === 'groups'
              ? { profile: { location: 'created meanwhile' } }
              : { name: `${kind} patched ${Date.now()} ${i}` }
        }),
        app.inject({
          method: 'PUT',
          url: `/api/${kind}/${id}/`,
          headers,
          payload:
            kind === 'groups'
              ? { name: `${kind} put ${Date.now()} ${i}`, profile: { location: 'x' } }
              : { name: `${kind} put ${Date.now()} ${i}` }
        }),
        app.inject({ method: 'DELETE', url: `/api/${kind}/${id}/`, headers })
      ])
      const results = await Promise.all(work)
      for (let i = 0; i < ids.length; i++) {
        const [d1, patch, put, d2] = results.slice(i * 4, i * 4 + 4)
        t.same([d1.statusCode, d2.statusCode].sort(), [200, 404], 'one delete wins, the other finds nothing')
        allowed(t, [patch, put], [200, 404])
        const changes = [patch, put].filter((r) => r.statusCode === 200).length
        t.equal(await events(`${subject}.updated`, key, ids[i]), changes, 'one updated event per 200')
        t.equal(await events(`${subject}.deleted`, key, ids[i]), 1, 'one deleted event')
        const versions = await sql<{ v: number }>(
          `select (payload->'data'->>'version')::int as v from outbox_event where subject like ? and (payload->'data'->>'${key}')::int = ? order by id`,
          [`${subject}.%`, ids[i]]
        )
        t.same(
          versions.map((r) => r.v),
          versions.map((_, n) => n + 1),
          'versions 1, 2, 3… in the order the events were queued'
        )
      }
      const idList = `{${ids.join(',')}}`
      t.same(await sql(`select id from ${table} where id = any(?::int[])`, [idList]), [], 'all deleted')
      if (kind === 'groups')
        t.same(
          await sql('select group_id from group_profile where group_id = any(?::int[])', [idList]),
          [],
          'no profile left'
        )
    })
  }

  t.test('groups: parallel PATCH creating the profile of a group that has none', async (t) => {
    const group = (
      await app.inject({ method: 'POST', url: '/api/groups/', headers, payload: { name: `bare ${Date.now()}` } })
    ).json()
    const results = await Promise.all(
      Array.from({ length: PARALLEL }, (_, i) =>
        app.inject({
          method: i % 2 ? 'PUT' : 'PATCH',
          url: `/api/groups/${group.id}/`,
          headers,
          payload: { name: group.name, profile: { location: `loc${i}` } }
        })
      )
    )
    t.same(statuses(results), { 200: PARALLEL })
    t.equal((await sql('select 1 from group_profile where group_id = ?', [group.id])).length, 1, 'one profile')
    t.equal(await events('directory.group.updated', 'group_id', group.id), PARALLEL, 'one event per change')
  })
})
