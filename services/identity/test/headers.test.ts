import t from 'tap'
import { build, bearer, login, ADMIN } from './helper.js'

t.test('every answer of a service sends nosniff and no-store, whatever its status', async (t) => {
  const app = await build(t)
  const tokens = await login(app, ADMIN.username, ADMIN.password)
  for (const [name, options] of Object.entries({
    login: { method: 'POST' as const, url: '/api/auth/', payload: ADMIN },
    refresh: { method: 'POST' as const, url: '/api/auth/refresh/', payload: { refresh: tokens.refresh } },
    user: { method: 'GET' as const, url: '/api/users/1/', headers: bearer(tokens.access) },
    anonymous: { method: 'GET' as const, url: '/api/users/1/' },
    notFound: { method: 'GET' as const, url: '/api/nowhere/' },
    invalid: { method: 'POST' as const, url: '/api/users/', payload: { username: 'a\u0000' } },
    notAllowed: { method: 'DELETE' as const, url: '/api/auth/' }
  })) {
    const res = await app.inject(options)
    t.ok(res.statusCode < 500, `${name}: ${res.statusCode}`)
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${name}: nosniff`)
    t.equal(res.headers['cache-control'], 'no-store', `${name}: no-store`)
  }
})
