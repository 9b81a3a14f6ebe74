import t from 'tap'
import { createServer } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import { ApiError, readThrough } from '../src/index.js'

t.test('read-through to the owner of a fact', async (t) => {
  const server = createServer((req, res) => {
    const status = Number(req.url!.split('/').pop())
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ status }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const options = { timeoutMs: 1000, log: { warn() {} } as unknown as FastifyBaseLogger }

  t.same(await readThrough(base, '/internal/200', options), { status: 200 }, 'the fact')
  t.equal(await readThrough(base, '/internal/404', options), null, 'the owner does not know it')
  t.equal(await readThrough('', '/internal/200', options), null, 'no owner configured')
  const statusOf = (p: Promise<unknown>) => p.then(() => 'answered', (error: ApiError) => error.statusCode)
  t.equal(await statusOf(readThrough(base, '/internal/500', options)), 503, 'an error of the owner is a 503, not a 404')
  t.equal(await statusOf(readThrough('http://127.0.0.1:9', '/internal/200', options)), 503, 'an unreachable owner is a 503')
})
