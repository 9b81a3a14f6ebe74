/**
 * Field checks that a JSON Schema keyword cannot express. Schemas name them with `x-check`; the
 * service kit runs them inside Ajv so that they are reported together with every other field error.
 * Each returns a message key of the kit's catalogue, or null when the value is fine.
 */
export type FieldCheck = (value: unknown) => string | null

const RESIDENT_ID = /^[0-9]{17}[0-9X]$/
const CHECKSUM_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
const CHECKSUM_CODES = '10X98765432'

export function residentIdChecksumOk(id: string): boolean {
  let sum = 0
  for (let i = 0; i < 17; i++) sum += Number(id[i]) * CHECKSUM_WEIGHTS[i]
  return CHECKSUM_CODES[sum % 11] === id[17]
}

function birthDateOk(id: string): boolean {
  const year = Number(id.slice(6, 10))
  const month = Number(id.slice(10, 12))
  const day = Number(id.slice(12, 14))
  if (year < 1800 || month < 1 || month > 12 || day < 1) return false
  const date = new Date(Date.UTC(year, month - 1, day))
  return date.getUTCMonth() === month - 1 && date.getUTCDate() === day && date.getTime() <= Date.now()
}

export const residentIdCheck =
  (strictChecksum: boolean): FieldCheck =>
  (value) => {
    if (typeof value !== 'string' || value === '') return null
    if (!RESIDENT_ID.test(value)) return 'resident_id_format'
    if (!birthDateOk(value)) return 'resident_id_birth_date'
    if (strictChecksum && !residentIdChecksumOk(value)) return 'resident_id_checksum'
    return null
  }

export const passwordCheck: FieldCheck = (value) => {
  if (typeof value !== 'string' || value === '') return null
  const bytes = Buffer.byteLength(value, 'utf8')
  if (bytes < 8) return 'password_too_short'
  if (bytes > 72) return 'password_too_long'
  if (/^[0-9]+$/.test(value)) return 'password_entirely_numeric'
  return null
}

export const CHECK_NAMES = ['password', 'resident-id'] as const
export type CheckName = (typeof CHECK_NAMES)[number]
