import t from 'tap'
import { connect } from 'node:net'
import { buildApp as buildIdentity, testConfig, ADMIN } from '@roster/identity/testing'
import { isolate } from '@roster/service-kit/testing'
import { buildApp } from '../src/app.js'
import { readConfig } from '../src/config.js'

t.test(
  'security headers through the gateway: nosniff everywhere, no-store on answers, a CSP Swagger UI can live with',
  async (t) => {
    const iso = await isolate(t)
    const identity = await buildIdentity(testConfig(iso))
    t.after(() => identity.close())
    await identity.listen({ host: '127.0.0.1', port: 0 })
    const gateway = await buildApp(
      readConfig({
        IDENTITY_URL: `http://127.0.0.1:${(identity.server.address() as any).port}`,
        DIRECTORY_URL: 'http://127.0.0.1:9',
        AUDIT_URL: 'http://127.0.0.1:9',
        NATS_URL: iso.NATS_URL,
        NATS_PREFIX: iso.NATS_PREFIX,
        LOG_LEVEL: 'silent'
      })
    )
    t.after(() => gateway.close())
    await gateway.ready()

    const login = await gateway.inject({ method: 'POST', url: '/api/auth/', payload: ADMIN })
    t.equal(login.statusCode, 200)
    const { access } = login.json()
    const answers = {
      token: login,
      user: await gateway.inject({ url: '/api/users/1/', headers: { authorization: `Bearer ${access}` } }),
      list: await gateway.inject({ url: '/api/users/', headers: { authorization: `Bearer ${access}` } }),
      anonymous: await gateway.inject({ url: '/api/users/1/' }),
      unknown: await gateway.inject({ url: '/api/nothing/' }),
      badJson: await gateway.inject({
        method: 'POST',
        url: '/api/auth/',
        headers: { 'content-type': 'application/json' },
        payload: '{'
      }),
      preflight: await gateway.inject({
        method: 'OPTIONS',
        url: '/api/users/',
        headers: { origin: 'https://a.example', 'access-control-request-method': 'GET' }
      })
    }
    for (const [name, res] of Object.entries(answers)) {
      t.equal(res.headers['x-content-type-options'], 'nosniff', `${name}: nosniff`)
      t.equal(res.headers['cache-control'], 'no-store', `${name}: no-store`)
    }
    t.equal(answers.user.statusCode, 200)

    const jwks = await gateway.inject({ url: '/api/auth/jwks/' })
    t.equal(jwks.headers['cache-control'], 'public, max-age=300', 'public keys may be cached')
    t.equal(jwks.headers['x-content-type-options'], 'nosniff')

    const docs = await gateway.inject({ url: '/docs/' })
    t.equal(docs.statusCode, 200)
    t.equal(docs.headers['x-content-type-options'], 'nosniff')
    const csp = String(docs.headers['content-security-policy'])
    t.match(csp, /default-src 'self'/)
    t.match(csp, /script-src 'self'(;|$)/, 'no inline or remote scripts')
    t.match(csp, /object-src 'none'/)
    t.match(csp, /frame-ancestors 'none'/)
    t.notMatch(csp, /upgrade-insecure-requests|https:|unsafe-eval/, 'works on plain HTTP and offline')
    // Swagger UI's page loads only same-origin scripts, which the policy allows.
    const html = docs.body
    for (const [, src] of html.matchAll(/<script[^>]*src="([^"]+)"/g))
      t.notMatch(src, /^(https?:)?\/\//, `script ${src} is same-origin`)
    t.notMatch(html, /<script>(?!\s*<\/script>)[^<]+<\/script>/, 'no inline script in the page')

    // Answers written before Fastify sees the request (Node's parser refused it) carry them too.
    await gateway.listen({ host: '127.0.0.1', port: 0 })
    const { port } = gateway.server.address() as { port: number }
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () =>
        socket.end(Buffer.from('GET /api/groups/?search=科 HTTP/1.1\r\nHost: x\r\n\r\n', 'utf8'))
      )
      let text = ''
      socket.on('data', (chunk) => (text += chunk.toString('utf8')))
      socket.on('end', () => resolve(text))
      socket.on('error', reject)
    })
    t.match(answer, /^HTTP\/1\.1 400 /)
    t.match(answer, /\r\nX-Content-Type-Options: nosniff\r\n/i)
    t.match(answer, /\r\nCache-Control: no-store\r\n/i)
  }
)
