import t from 'tap'
import { passwordCheck, residentIdCheck, residentIdChecksumOk } from '../src/checks.js'

t.test('resident ID numbers', async (t) => {
  const lenient = residentIdCheck(false)
  const strict = residentIdCheck(true)
  t.equal(lenient('100000190001010001'), null, "the document's own example passes without the checksum")
  t.equal(strict('100000190001010001'), 'resident_id_checksum')
  t.equal(strict('11010519491231002X'), null, 'a valid check digit X')
  t.ok(residentIdChecksumOk('11010519491231002X'))
  t.equal(lenient('1000001900010100'), 'resident_id_format')
  t.equal(lenient('10000019000101000x'), 'resident_id_format', 'lower-case x is not accepted')
  t.equal(lenient('100000190002300001'), 'resident_id_birth_date', 'February 30th')
  t.equal(lenient('100000179912310001'), 'resident_id_birth_date', 'before 1800')
  t.equal(lenient('100000299912310001'), 'resident_id_birth_date', 'in the future')
  t.equal(lenient(''), null, 'blank is left to minLength')
})

t.test('passwords', async (t) => {
  t.equal(passwordCheck('password1'), null)
  t.equal(passwordCheck('short'), 'password_too_short')
  t.equal(passwordCheck('12345678'), 'password_entirely_numeric')
  t.equal(passwordCheck('a'.repeat(72)), null)
  t.equal(passwordCheck('a'.repeat(73)), 'password_too_long')
  t.equal(passwordCheck('密'.repeat(24)), null, '72 bytes of UTF-8')
  t.equal(passwordCheck('密'.repeat(25)), 'password_too_long')
})
