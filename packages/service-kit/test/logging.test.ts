import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { AccessLogController, loggerOptions } from '../src/logging.js'

function capture() {
  const lines: any[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)))
      done()
    }
  })
  return { lines, stream }
}

t.test(
  'secret fields are replaced at the top and up to three levels down, without touching the logged object',
  async (t) => {
    const { lines, stream } = capture()
    const app = Fastify({ logger: loggerOptions('test', 'info', { stream }) as any })
    const logged = {
      password: 'p1',
      user: {
        phone: '13912345678',
        name: 'ok',
        profile: { identify_id: '110101199003074477', deep: { token: 't', kept: 1 } }
      },
      list: [{ refresh: 'r' }, 'plain'],
      headers: { authorization: 'Bearer x', 'set-cookie': 'sid=1', accept: 'json' },
      when: new Date(0)
    }
    app.log.info(logged, 'object')
    app.log.child({ access: 'a-token', reqId: 'r1' }).info('child')
    const error = Object.assign(new Error('failed'), { phone: '13912345678', code: 'X' })
    app.log.error({ err: error }, 'error')
    await app.close()
    const [object, child, failed] = lines
    t.equal(object.password, '[redacted]')
    t.equal(object.user.phone, '[redacted]')
    t.equal(object.user.name, 'ok')
    t.equal(object.user.profile.identify_id, '[redacted]')
    t.equal(object.user.profile.deep.token, '[redacted]')
    t.equal(object.user.profile.deep.kept, 1)
    t.equal(object.list[0].refresh, '[redacted]')
    t.equal(object.list[1], 'plain')
    t.same(object.headers, { authorization: '[redacted]', 'set-cookie': '[redacted]', accept: 'json' })
    t.equal(object.when, '1970-01-01T00:00:00.000Z')
    t.equal(child.access, '[redacted]')
    t.equal(child.reqId, 'r1')
    t.equal(failed.err.code, 'X')
    t.notOk('phone' in failed.err)
    t.equal(logged.password, 'p1', "the caller's object is unchanged")
    t.equal(logged.user.profile.deep.token, 't')
    t.equal((logged.list[0] as { refresh: string }).refresh, 'r')
    for (const line of lines) t.notMatch(JSON.stringify(line), /13912345678|110101199003074477|Bearer|p1"|sid=1/)
  }
)

t.test('one access line per request: method, path with query names but no values, status, time', async (t) => {
  const { lines, stream } = capture()
  const app = Fastify({
    logger: loggerOptions('test', 'info', { stream }) as any,
    logController: new AccessLogController()
  })
  app.get('/api/users/', async () => [])
  app.get('/api/fails/', async () => {
    throw new Error('boom')
  })
  const response = await app.inject({ url: '/api/users/?search=13912345678&limit=5' })
  t.equal(response.statusCode, 200)
  await app.inject({ url: '/nowhere?phone=13912345678' })
  t.equal((await app.inject({ url: '/api/fails/?phone=13912345678' })).statusCode, 500)
  await app.close()
  const access = lines.filter((l) => l.msg === 'request')
  t.equal(access.length, 3, 'one line per request')
  t.equal(access[2].status, 500)
  t.equal(access[2].url, '/api/fails/?phone')
  const failed = lines.filter((l) => l.level === 50)
  t.equal(failed.length, 1, 'the error is still logged, once')
  t.equal(failed[0].err.message, 'boom')
  t.equal(access[0].method, 'GET')
  t.equal(access[0].url, '/api/users/?search&limit')
  t.equal(access[0].status, 200)
  t.type(access[0].ms, 'number')
  t.ok(access[0].reqId)
  t.equal(access[1].status, 404)
  t.equal(access[1].url, '/nowhere?phone')
  t.notOk(
    lines.some((l) => /incoming request|request completed/.test(l.msg)),
    "Fastify's own request lines are off"
  )
  t.notMatch(JSON.stringify(lines), /13912345678/)
})

t.test("a service's access line is at debug: none at info, errors still logged; shown at debug", async (t) => {
  for (const level of ['info', 'debug'] as const) {
    const { lines, stream } = capture()
    const app = Fastify({
      logger: loggerOptions('test', level, { stream }) as any,
      logController: new AccessLogController('debug')
    })
    app.get('/api/users/', async () => [])
    app.get('/api/fails/', async () => {
      throw new Error('boom')
    })
    t.equal((await app.inject({ url: '/api/users/' })).statusCode, 200)
    t.equal((await app.inject({ url: '/api/fails/' })).statusCode, 500)
    await app.close()
    const access = lines.filter((l) => l.msg === 'request')
    t.equal(
      access.length,
      level === 'debug' ? 2 : 0,
      `at ${level}: ${level === 'debug' ? 'one line per request' : 'no access line'}`
    )
    t.ok(
      access.every((l) => l.level === 20),
      'at debug'
    )
    t.equal(lines.filter((l) => l.level === 50).length, 1, `at ${level}: the error is logged`)
  }
})

t.test('a process whose standard output reader is gone still exits (no flush retried forever)', async (t) => {
  // A service started by a launcher that was killed: its stdout is a pipe nobody reads any more.
  const script = `
import pino from 'pino'
import { loggerOptions } from ${JSON.stringify(new URL('../src/logging.ts', import.meta.url).pathname)}
const log = pino(loggerOptions('test', 'info'))
log.info('started')
process.on('SIGTERM', () => { log.info('closing'); process.exit(0) })
setInterval(() => log.info('still here'), 5)
`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: new URL('..', import.meta.url).pathname,
    stdio: ['ignore', 'pipe', 'ignore']
  })
  t.teardown(() => child.kill('SIGKILL'))
  await once(child.stdout!, 'data')
  const exited = once(child, 'exit')
  child.stdout!.destroy()
  await once(child.stdout!, 'close')
  child.kill('SIGTERM')
  const outcome = await Promise.race([
    exited.then(() => 'exited'),
    sleep(20_000, undefined, { ref: false }).then(() => 'still running')
  ])
  t.equal(outcome, 'exited')
})
