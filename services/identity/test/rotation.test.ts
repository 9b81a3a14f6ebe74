import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isolate } from '@roster/service-kit/testing'
import { buildApp } from '../src/app.js'
import { testConfig, testKey, login, bearer, register } from './helper.js'

t.test('a key rotation keeps the tokens of the previous key valid until they expire', async (t) => {
  const iso = await isolate(t)
  const dir = await mkdtemp(join(tmpdir(), 'roster-keys-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const oldFile = join(dir, 'old.pem')
  await writeFile(oldFile, testKey)

  const before = await buildApp(testConfig(iso))
  await before.ready()
  const user = await register(before)
  const tokens = await login(before, user.username, 'password1')
  await before.close()

  const newKey = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const after = await buildApp(
    testConfig(iso, { ROSTER_JWT_PRIVATE_KEY: newKey, ROSTER_JWT_PREVIOUS_KEY_FILES: oldFile })
  )
  t.after(() => after.close())
  await after.ready()

  const jwks = (await after.inject({ method: 'GET', url: '/api/auth/jwks/' })).json()
  t.equal(jwks.keys.length, 2, 'the JWKS serves the new key and the previous one')
  t.equal(
    (await after.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(tokens.access) })).statusCode,
    200
  )
  const refreshed = await after.inject({
    method: 'POST',
    url: '/api/auth/refresh/',
    payload: { refresh: tokens.refresh }
  })
  t.equal(refreshed.statusCode, 200)
  const header = JSON.parse(Buffer.from(refreshed.json().access.split('.')[0], 'base64url').toString())
  t.equal(header.kid, jwks.keys[0].kid, 'new tokens are signed with the new key')

  const without = await buildApp(testConfig(iso, { ROSTER_JWT_PRIVATE_KEY: newKey }))
  t.after(() => without.close())
  await without.ready()
  t.equal(
    (await without.inject({ method: 'GET', url: `/api/users/${user.id}/`, headers: bearer(tokens.access) })).statusCode,
    401,
    'a retired key is refused once dropped'
  )
})
