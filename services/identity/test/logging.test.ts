import t from 'tap'
import { Writable } from 'node:stream'
import type { EntityManager } from '@mikro-orm/postgresql'
import { isolate } from '@roster/service-kit/testing'
import { buildApp } from '../src/app.js'
import { ProfileEntity } from '../src/entities/index.js'
import { ADMIN, bearer, login, testConfig } from './helper.js'

const PHONE = '13912345678'
const IDENTIFY_ID = '110101199003074477'
const PASSWORD = 'secret-pass-4711'

t.test(
  'log lines carry no password, hash, token, resident ID number or phone, even of failed statements',
  async (t) => {
    const lines: string[] = []
    const stream = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk))
        done()
      }
    })
    const iso = await isolate(t)
    const app = await buildApp(testConfig(iso), { logger: { level: 'trace', stream } })
    t.after(() => app.close())
    await app.ready()

    const profile = { name: '张三', gender: 1, age: 30, identify_id: IDENTIFY_ID, phone: PHONE, address: 'x' }
    const reg = await app.inject({
      method: 'POST',
      url: '/api/users/',
      payload: { username: 'zhang', password: PASSWORD, profile }
    })
    t.equal(reg.statusCode, 200)
    const userId = reg.json().id as number
    const tokens = await login(app, 'zhang', PASSWORD)
    const admin = await login(app, ADMIN.username, ADMIN.password)
    const search = await app.inject({
      url: `/api/users/?search=${PHONE}`,
      headers: { ...bearer(admin.access), cookie: `sid=${tokens.refresh}` }
    })
    t.equal(search.statusCode, 200)
    const refresh = await app.inject({
      method: 'POST',
      url: '/api/auth/refresh/',
      payload: { refresh: tokens.refresh }
    })
    t.equal(refresh.statusCode, 200)
    const wrong = await app.inject({
      method: 'POST',
      url: '/api/auth/',
      payload: { username: 'zhang', password: 'wrong-' + PASSWORD }
    })
    t.equal(wrong.statusCode, 401)

    const [{ password: hash }] = await (app.orm.em.fork() as EntityManager)
      .getConnection()
      .execute<{ password: string }[]>('select password from app_user where id = ?', [userId])
    t.match(hash, /^\$2[aby]\$/)

    // Real failing statements, logged as the service logs errors: a unique violation through MikroORM
    // (whose message carries the statement and its values) and a not-null violation from pg (whose
    // `detail` is "Failing row contains (...)").
    const em = app.orm.em.fork() as EntityManager
    const duplicate = await em
      .insert(ProfileEntity, {
        user: userId,
        name: '张三',
        namePinyin: 'zhangsan',
        nameInitials: 'zs',
        gender: 1,
        age: 30,
        identifyId: IDENTIFY_ID,
        phone: PHONE,
        address: 'x',
        occupation: null,
        creator: null,
        modifier: null,
        createTime: new Date(),
        modifyTime: new Date()
      })
      .then(
        () => null,
        (error: unknown) => error
      )
    t.ok(duplicate, 'the duplicate profile insert failed')
    t.match(String((duplicate as Error).message), IDENTIFY_ID, 'the raw error does carry the value')
    app.log.error({ err: duplicate }, 'insert failed')
    const notNull = await em
      .getConnection()
      .execute(
        'insert into profile (user_id, name, name_pinyin, name_initials, gender, age, identify_id, phone) values (?, null, ?, ?, 1, 1, ?, ?)',
        [userId + 1000, 'p', 'p', IDENTIFY_ID, PHONE]
      )
      .then(
        () => null,
        (error: unknown) => error
      )
    t.ok(notNull, 'the not-null insert failed')
    app.log.error({ err: notNull }, 'insert failed')
    app.log.warn({ err: new Error('wrapped', { cause: notNull }) }, 'wrapped failure')
    app.log.info(
      { body: { password: PASSWORD, profile: { phone: PHONE, identify_id: IDENTIFY_ID } }, token: tokens.access },
      'an object holding secrets'
    )

    const log = lines.join('')
    t.match(log, /23505/, 'the unique violation was logged, by its code')
    t.match(log, /profile_pkey/, 'with its constraint')
    t.match(log, /23502/, 'the not-null violation was logged')
    t.match(log, /\?search/, 'the request line names the query parameter')
    for (const [what, value] of Object.entries({
      phone: PHONE,
      identify_id: IDENTIFY_ID,
      password: PASSWORD,
      hash,
      access: tokens.access,
      refresh: tokens.refresh,
      adminAccess: admin.access
    })) {
      t.notOk(log.includes(value), `no ${what} in the log`)
    }
    t.notOk(/Failing row contains/.test(log), 'no detail of a failing row')
    t.notOk(/insert into/i.test(log), 'no SQL text')
  }
)
