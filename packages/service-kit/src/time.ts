const formatters = new Map<string, Intl.DateTimeFormat>()

function partsFormatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit'
    })
    formatters.set(timeZone, f)
  }
  return f
}

/** Throws a RangeError for a zone name the runtime does not know, so a bad config fails at start-up. */
export function assertTimeZone(timeZone: string): void {
  partsFormatter(timeZone)
}

/** RFC 3339 with milliseconds and the zone's offset: `2019-12-14T00:08:16.967+08:00`. */
export function formatTime(date: Date, timeZone: string): string {
  const p: Record<string, string> = {}
  for (const part of partsFormatter(timeZone).formatToParts(date)) p[part.type] = part.value
  const local = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second)
  const offsetMinutes = Math.round((local - Math.floor(date.getTime() / 1000) * 1000) / 60000)
  const sign = offsetMinutes < 0 ? '-' : '+'
  const abs = Math.abs(offsetMinutes)
  const offset = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`
  const ms = String(date.getUTCMilliseconds()).padStart(3, '0')
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}.${ms}${offset}`
}
