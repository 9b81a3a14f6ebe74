import t from 'tap'
import Fastify from 'fastify'
import { INTERNAL_PATHS } from '@roster/contracts'
import { type ApiError, readThrough } from '../src/index.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

const PHONE = '13800138000'
const FACT = { user_id: 1, username: 'zhang', is_staff: false, is_active: true, version: 3, actor: null }

/** A real owner: `/internal/users/:pk` answers the fact for 1 and something else for every other id. */
async function owner(t: Teardown): Promise<string> {
  const app = Fastify()
  app.get<{ Params: { pk: string } }>('/internal/users/:pk', async (request, reply) => {
    switch (Number(request.params.pk)) {
      case 1:
        return FACT
      case 2:
        return reply.code(404).send({ detail: 'not found' })
      case 3:
        return reply.code(500).send({ detail: 'boom' })
      case 4:
        // the contract's fields with the wrong types, and personal data where the name should be
        return { ...FACT, user_id: '4', username: { phone: PHONE } }
      case 5:
        // a field missing
        return { user_id: 5, username: PHONE, is_staff: false, version: 1, actor: null }
      case 6:
        return reply.type('application/json').send(`{"user_id": 6, "username": "${PHONE}"`)
      case 7:
        // a valid fact, about another user
        return FACT
      default:
        return reply.code(400).send({ detail: 'bad' })
    }
  })
  t.teardown(() => app.close())
  return app.listen({ port: 0, host: '127.0.0.1' })
}

/** A real pino logger (Fastify's) whose lines are kept, parsed. */
function logger(t: Teardown) {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => lines.push(line) } } })
  t.teardown(() => app.close())
  return { log: app.log, lines, entries: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) }
}

const statusOf = (p: Promise<unknown>) =>
  p.then(
    () => 'answered',
    (error: ApiError) => error.statusCode
  )

t.test('read-through to the owner of a fact', async (t) => {
  const base = await owner(t)
  const { log, entries } = logger(t)
  const ask = (id: number, url = base) =>
    readThrough(url, INTERNAL_PATHS.user(id), 'identity.user.created', { timeoutMs: 2000, log, id })

  t.same(await ask(1), FACT, 'the fact, as the contract says it')
  t.equal(await ask(2), null, 'the owner does not know it')
  t.equal(await ask(1, ''), null, 'no owner configured')
  t.equal(await statusOf(ask(3)), 503, 'an error of the owner is a 503, not a 404')
  t.equal(await statusOf(ask(1, 'http://127.0.0.1:9')), 503, 'an unreachable owner is a 503')
  t.equal(entries().filter((e) => e.msg === 'read-through answer refused').length, 0, 'nothing refused so far')
})

t.test('an answer that is not the contract is refused like a malformed event', async (t) => {
  const base = await owner(t)
  const { log, lines, entries } = logger(t)
  const ask = (id: number) =>
    readThrough(base, INTERNAL_PATHS.user(id), 'identity.user.created', { timeoutMs: 2000, log, id })

  for (const [id, reason] of [
    [4, 'answer does not match the contract'],
    [5, 'answer does not match the contract'],
    [6, 'answer is not JSON'],
    [7, 'answer is about another id']
  ] as const) {
    t.equal(await statusOf(ask(id)), 503, `${id}: a 503 for the client, never the bad fact or a false 404`)
    const refused = entries().filter(
      (e) => e.msg === 'read-through answer refused' && e.path === INTERNAL_PATHS.user(id)
    )
    t.equal(refused.length, 1, `${id}: logged once`)
    t.match(refused[0], { level: 50, reason, carries: 'identity.user.created' }, `${id}: as an error, with the reason`)
  }
  t.notOk(lines.join('\n').includes(PHONE), 'the answer itself is never logged')
})

t.test('the contract check is the one for the fact named', async (t) => {
  const base = await owner(t)
  const { log } = logger(t)
  // a user fact is not a group fact
  const asked = readThrough(base, INTERNAL_PATHS.user(1), 'directory.group.created', { timeoutMs: 2000, log, id: 1 })
  t.equal(await statusOf(asked), 503)
})
