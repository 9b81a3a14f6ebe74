import t from 'tap'
import { eventually, statusCounts } from '@roster/service-kit/testing'
import { bearer, buildSystem, newUser, sql } from './helper.js'

/**
 * Audit's write paths (the blacklist) run against themselves and against removal and user deletion, many
 * requests at once on the real PostgreSQL: each answer is a 2xx or the 4xx that names what happened, and a
 * patient is never actively listed twice.
 */
const PARALLEL = 24

type Res = { statusCode: number; body: string; json(): any }

const statuses = statusCounts

t.test('blacklist writes under concurrency', async (t) => {
  const sys = await buildSystem(t)
  const { audit } = sys
  const headers = { ...bearer(sys.admin.access), 'accept-language': 'en' }
  const list = (patient: number, reason = 'r') =>
    audit.inject({ method: 'POST', url: '/api/black-list/', headers, payload: { patient, reason } })
  const allowed = (t: { fail(message: string): unknown }, results: Res[], ok: number[]) => {
    for (const r of results) if (!ok.includes(r.statusCode)) t.fail(`unexpected ${r.statusCode}: ${r.body}`)
  }
  const active = async (patient: number) =>
    (
      await sql<{ n: number }>(
        audit,
        'select count(*)::int as n from black_list where patient_id = ? and is_delete = 0',
        [patient]
      )
    )[0].n
  const ALREADY = { patient: ['This patient is already on the blacklist.'] }

  t.test('one patient listed by many admins at once', async (t) => {
    const patient = await newUser(sys, { login: false })
    const results = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => list(patient.id, `reason ${i}`)))
    allowed(t, results, [200, 400])
    t.equal(statuses(results)[200], 1, 'one wins')
    for (const r of results.filter((r) => r.statusCode === 400)) t.same(r.json(), ALREADY)
    t.equal(await active(patient.id), 1)
  })

  t.test('listed again while the entry is removed, many times at once', async (t) => {
    const patient = await newUser(sys, { login: false })
    const first = (await list(patient.id)).json()
    const work = Array.from({ length: PARALLEL }, (_, i) =>
      i % 2
        ? audit.inject({ method: 'DELETE', url: `/api/black-list/${first.id}/`, headers })
        : list(patient.id, `again ${i}`)
    )
    const results = await Promise.all(work)
    const removals = results.filter((_, i) => i % 2)
    const listings = results.filter((_, i) => i % 2 === 0)
    t.same(statuses(removals), { 200: PARALLEL / 2 }, 'removing is idempotent')
    allowed(t, listings, [200, 400])
    for (const r of listings.filter((r) => r.statusCode === 400)) t.same(r.json(), ALREADY)
    t.ok((statuses(listings)[200] ?? 0) <= 1, 'listed again at most once')
    t.equal(await active(patient.id), statuses(listings)[200] ?? 0, 'active entries: the one that got through')
    const [{ n }] = await sql<{ n: number }>(audit, 'select count(*)::int as n from black_list where patient_id = ?', [
      patient.id
    ])
    t.equal(n, 1 + (statuses(listings)[200] ?? 0), 'a row per 200, none lost')
  })

  t.test('reason changed while the entry is removed', async (t) => {
    const patient = await newUser(sys, { login: false })
    const entry = (await list(patient.id)).json()
    const results = await Promise.all(
      Array.from({ length: PARALLEL }, (_, i) =>
        i % 3 === 0
          ? audit.inject({ method: 'DELETE', url: `/api/black-list/${entry.id}/`, headers })
          : audit.inject({
              method: i % 2 ? 'PUT' : 'PATCH',
              url: `/api/black-list/${entry.id}/`,
              headers,
              payload: { reason: `reason ${i}` }
            })
      )
    )
    t.same(statuses(results), { 200: PARALLEL })
    const [row] = await sql<{ is_delete: number; reason: string }>(
      audit,
      'select is_delete, reason from black_list where id = ?',
      [entry.id]
    )
    t.equal(row.is_delete, 1)
    t.match(row.reason, /^reason \d+$/, 'the last change stands')
  })

  t.test('patients listed while identity deletes them', async (t) => {
    const patients = await Promise.all(Array.from({ length: PARALLEL / 2 }, () => newUser(sys, { login: false })))
    const work = patients.flatMap((p) => [
      list(p.id),
      sys.identity.inject({ method: 'DELETE', url: `/api/users/${p.id}/`, headers: bearer(sys.admin.access) })
    ])
    const results = await Promise.all(work)
    for (let i = 0; i < patients.length; i++) {
      const [listing, deletion] = results.slice(i * 2, i * 2 + 2)
      t.equal(deletion.statusCode, 200)
      allowed(t, [listing], [200, 400])
      if (listing.statusCode === 400)
        t.same(listing.json(), { patient: [`Invalid pk "${patients[i].id}" - object does not exist.`] })
    }
    const ids = `{${patients.map((p) => p.id).join(',')}}`
    await eventually(
      async () => {
        const [{ n }] = await sql<{ n: number }>(
          audit,
          'select count(*)::int as n from known_user where id = any(?::int[]) and deleted_at is not null',
          [ids]
        )
        return n === patients.length
      },
      { timeoutMs: 30000 }
    )
    const late = await list(patients[0].id)
    t.equal(late.statusCode, 400, 'a deleted user cannot be listed')
  })
})
