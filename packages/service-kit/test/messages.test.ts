import t from 'tap'
import { message, negotiateLanguage } from '../src/messages.js'
import { formatTime } from '../src/time.js'
import { FieldErrors, type ValidationError, ThrottledError, TokenInvalidError } from '../src/errors.js'

t.test('language negotiation', async (t) => {
  t.equal(negotiateLanguage(undefined), 'zh')
  t.equal(negotiateLanguage('en'), 'en')
  t.equal(negotiateLanguage('en-US,en;q=0.9,zh;q=0.8'), 'en')
  t.equal(negotiateLanguage('zh-CN,zh;q=0.9,en;q=0.8'), 'zh')
  t.equal(negotiateLanguage('fr'), 'zh')
})

t.test('messages with parameters', async (t) => {
  t.equal(message('max_length', 'zh', { limit: 150 }), '请确保这个字段不能超过 150 个字符。')
  t.equal(message('max_length', 'en', { limit: 150 }), 'Ensure this field has no more than 150 characters.')
  t.equal(message('login_failed', 'zh'), 'No active account found with the given credentials')
})

t.test('times are RFC 3339 in the configured zone', async (t) => {
  const date = new Date('2019-12-13T16:08:16.967Z')
  t.equal(formatTime(date, 'Asia/Shanghai'), '2019-12-14T00:08:16.967+08:00')
  t.equal(formatTime(date, 'UTC'), '2019-12-13T16:08:16.967+00:00')
  t.equal(formatTime(date, 'America/New_York'), '2019-12-13T11:08:16.967-05:00')
  t.equal(formatTime(new Date('2019-07-01T00:00:00.001Z'), 'Asia/Kolkata'), '2019-07-01T05:30:00.001+05:30')
  t.throws(() => formatTime(date, 'Nowhere/Else'), RangeError)
})

t.test('field errors nest and render in the DRF shape', async (t) => {
  const errors = new FieldErrors()
  t.ok(errors.empty)
  errors.add('username', 'required').add(['profile', 'name'], 'blank').add(['profile', 'name'], 'blank')
  errors.add(['profile', 'age'], 'max_value', { limit: 150 })
  t.ok(errors.has(['profile', 'name']))
  t.notOk(errors.has(['profile', 'phone']))
  const error = t.throws(() => errors.throwIfAny()) as ValidationError
  t.same(error.body('zh'), {
    username: ['该字段是必填项。'],
    profile: { name: ['该字段不能为空。'], age: ['请确保该值小于或者等于 150。'] }
  })
  t.same(new TokenInvalidError().body('en'), {
    detail: 'Given token not valid for any token type',
    code: 'token_not_valid'
  })
  const throttled = new ThrottledError(12.2)
  t.equal(throttled.headers['retry-after'], '13')
  t.same(throttled.body('en'), { detail: 'Request was throttled. Expected available in 13 seconds.' })
})
