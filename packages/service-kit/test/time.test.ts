import t from 'tap'
import { formatTime } from '../src/time.js'

/** The straightforward formatting (formatToParts per timestamp) that formatTime's cached offsets must match. */
const referenceFormatters = new Map<string, Intl.DateTimeFormat>()
function reference(date: Date, timeZone: string): string {
  const f =
    referenceFormatters.get(timeZone) ??
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      timeZoneName: 'longOffset'
    })
  referenceFormatters.set(timeZone, f)
  const p: Record<string, string> = {}
  for (const part of f.formatToParts(date)) p[part.type] = part.value
  // "GMT+05:30", "GMT-03:30", "GMT" for zero
  const offset = p.timeZoneName === 'GMT' ? '+00:00' : p.timeZoneName.slice(3)
  const ms = String(date.getUTCMilliseconds()).padStart(3, '0')
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}.${ms}${offset}`
}

t.test('DST transitions in Europe/Berlin, to the millisecond', async (t) => {
  const z = 'Europe/Berlin'
  t.equal(formatTime(new Date('2024-03-31T00:59:59.999Z'), z), '2024-03-31T01:59:59.999+01:00')
  t.equal(formatTime(new Date('2024-03-31T01:00:00.000Z'), z), '2024-03-31T03:00:00.000+02:00')
  t.equal(formatTime(new Date('2024-10-27T00:59:59.999Z'), z), '2024-10-27T02:59:59.999+02:00')
  t.equal(formatTime(new Date('2024-10-27T01:00:00.000Z'), z), '2024-10-27T02:00:00.000+01:00')
  // the same instants again, now that their slices are cached, and in the other order
  t.equal(formatTime(new Date('2024-10-27T01:00:00.000Z'), z), '2024-10-27T02:00:00.000+01:00')
  t.equal(formatTime(new Date('2024-10-27T00:59:59.999Z'), z), '2024-10-27T02:59:59.999+02:00')
  t.equal(formatTime(new Date('2024-03-31T01:00:00.000Z'), z), '2024-03-31T03:00:00.000+02:00')
  t.equal(formatTime(new Date('2024-03-31T00:59:59.999Z'), z), '2024-03-31T01:59:59.999+01:00')
})

t.test('Asia/Shanghai, today and during its DST years (1986–1991)', async (t) => {
  t.equal(formatTime(new Date('2019-12-13T16:08:16.967Z'), 'Asia/Shanghai'), '2019-12-14T00:08:16.967+08:00')
  t.equal(formatTime(new Date('1988-07-01T00:00:00.000Z'), 'Asia/Shanghai'), '1988-07-01T09:00:00.000+09:00')
  t.equal(formatTime(new Date('1988-12-01T00:00:00.000Z'), 'Asia/Shanghai'), '1988-12-01T08:00:00.000+08:00')
})

t.test('every 53 minutes and 13 ms across two years of transitions agrees with formatToParts', async (t) => {
  const zones = [
    'Europe/Berlin',
    'Asia/Shanghai',
    'America/New_York',
    'Australia/Lord_Howe',
    'America/St_Johns',
    'Pacific/Chatham',
    'Asia/Kolkata',
    'UTC'
  ]
  const ranges: Array<[string, string]> = [
    ['2023-01-01T00:00:00Z', '2025-01-01T00:00:00Z'],
    ['1987-01-01T00:00:00Z', '1989-01-01T00:00:00Z']
  ]
  for (const zone of zones) {
    let checked = 0
    let wrong = 0
    let first = ''
    for (const [from, to] of ranges) {
      for (let ms = Date.parse(from); ms < Date.parse(to); ms += 53 * 60_000 + 13) {
        const date = new Date(ms)
        const got = formatTime(date, zone)
        const want = reference(date, zone)
        checked++
        if (got !== want) {
          wrong++
          first ||= `${date.toISOString()}: ${got} ≠ ${want}`
        }
      }
    }
    t.equal(wrong, 0, `${zone}: ${checked} timestamps${first ? `, first wrong ${first}` : ''}`)
  }
})

t.test('an unknown zone is a RangeError', async (t) => {
  t.throws(() => formatTime(new Date(), 'Nowhere/Else'), RangeError)
})

t.test('before 1970 and before year 1000, the milliseconds and the padded year stay right', async (t) => {
  t.equal(formatTime(new Date(-1), 'UTC'), '1969-12-31T23:59:59.999+00:00')
  t.equal(formatTime(new Date(Date.UTC(999, 0, 1, 0, 0, 0, 5)), 'UTC'), '0999-01-01T00:00:00.005+00:00')
  t.equal(
    formatTime(new Date(Date.UTC(2019, 11, 13, 16, 8, 16, 967)), 'Asia/Shanghai'),
    '2019-12-14T00:08:16.967+08:00'
  )
  // consecutive timestamps of a page that cross midnight take the next day's date
  t.equal(
    formatTime(new Date(Date.UTC(2019, 11, 14, 15, 59, 59, 999)), 'Asia/Shanghai'),
    '2019-12-14T23:59:59.999+08:00'
  )
  t.equal(formatTime(new Date(Date.UTC(2019, 11, 14, 16, 0, 0, 0)), 'Asia/Shanghai'), '2019-12-15T00:00:00.000+08:00')
})
