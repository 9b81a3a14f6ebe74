import t from 'tap'
import Fastify from 'fastify'
import { metricsPlugin } from '../src/plugins/metrics.js'

t.test('request durations are counted per method, route template and status', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(metricsPlugin, { service: 'test' })
  app.get('/api/things/:id/', async (request, reply) =>
    (request.params as { id: string }).id === '0' ? reply.code(500).send({ detail: 'x' }) : { ok: true }
  )
  t.teardown(() => app.close())
  for (const id of ['1', '2', '3', '0']) await app.inject(`/api/things/${id}/`)
  await app.inject({ method: 'POST', url: '/api/things/1/' })
  const text = (await app.inject('/metrics')).body
  const count = (labels: string) =>
    Number(
      new RegExp(`^http_request_duration_seconds_count\\{service="test",${labels}\\} (\\d+)$`, 'm').exec(text)?.[1]
    )
  t.equal(count('method="GET",route="/api/things/:id/",status="200"'), 3, 'one series for every id of the template')
  t.equal(count('method="GET",route="/api/things/:id/",status="500"'), 1)
  t.equal(count('method="POST",route="unmatched",status="404"'), 1)
  t.match(text, /^http_server_errors_total\{[^}]*route="\/api\/things\/:id\/"[^}]*\} 1$/m)
  t.notMatch(text, /route="\/metrics"/, 'the scrape itself is not counted')
})
