import t from 'tap'
import { Type } from '@sinclair/typebox'
import { loadConfig } from '../src/config.js'

const Schema = Type.Object({
  PORT: Type.Integer({ default: 3001 }),
  PEER_URL: Type.String({ default: 'http://127.0.0.1:3102' })
})

t.test('only the environment given is read: the process environment never leaks in', async (t) => {
  const saved = { PORT: process.env.PORT, PEER_URL: process.env.PEER_URL }
  process.env.PORT = '1234'
  process.env.PEER_URL = 'http://from-the-shell'
  t.teardown(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  })
  t.same(loadConfig(Schema, {}, {}), { PORT: 3001, PEER_URL: 'http://127.0.0.1:3102' })
  t.same(loadConfig(Schema, {}, { PORT: '8080' }), { PORT: 8080, PEER_URL: 'http://127.0.0.1:3102' })
})

t.test('an empty value is unset for numbers and a value of its own for text', async (t) => {
  t.same(loadConfig(Schema, {}, { PORT: '', PEER_URL: '' }), { PORT: 3001, PEER_URL: '' })
})
