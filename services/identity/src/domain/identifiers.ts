import type { MessageKey } from '@roster/service-kit'
import unhomoglyph from 'unhomoglyph'

/**
 * How usernames (and e-mail addresses) are compared: Unicode NFKC, then full case folding, then NFKC
 * again (Unicode's NFKC_Casefold without the removal of default-ignorables, which the username
 * grammar refuses anyway). `ａｄｍｉｎ`, `ADMIN` and `Admin` share the key `admin`; `STRASSE` and
 * `straße` share `strasse`; `Ärzte` and `ärzte` share `ärzte`. JavaScript has no `casefold()`: upper
 * then lower case gives full folding for everything a username may hold (ß → ss, ς → σ, ǅ → ǆ).
 */
export function identifierKey(value: string): string {
  return value.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC')
}

const USERNAME = /^[\p{L}\p{N}_.@+-]+$/u

// Scripts a letter or digit may belong to; anything else counts as a script of its own. Common
// (ASCII digits, `@ . + - _`, full-width forms after NFKC) and Inherited mix with everything.
const SCRIPTS = [
  'Latin',
  'Han',
  'Hiragana',
  'Katakana',
  'Bopomofo',
  'Hangul',
  'Cyrillic',
  'Greek',
  'Armenian',
  'Georgian',
  'Hebrew',
  'Arabic',
  'Syriac',
  'Thaana',
  'Devanagari',
  'Bengali',
  'Gurmukhi',
  'Gujarati',
  'Oriya',
  'Tamil',
  'Telugu',
  'Kannada',
  'Malayalam',
  'Sinhala',
  'Thai',
  'Lao',
  'Tibetan',
  'Myanmar',
  'Khmer',
  'Mongolian',
  'Ethiopic',
  'Cherokee',
  'Yi',
  'Coptic',
  'Tifinagh',
  'Canadian_Aboriginal',
  'Runic',
  'Ogham',
  'Common',
  'Inherited'
].map((name) => [name, new RegExp(`^\\p{Script=${name}}$`, 'u')] as const)

function scriptOf(char: string): string {
  for (const [name, re] of SCRIPTS) if (re.test(char)) return name
  return `other:${char}`
}

// UTS #39's "highly restrictive" level: one script, or Latin with the scripts written beside it in
// China, Japan and Korea (so `张三zs01`, `山田taro` and `김minsu` are fine).
const ALLOWED_MIXES = [
  new Set(['Latin', 'Han', 'Hiragana', 'Katakana']),
  new Set(['Latin', 'Han', 'Bopomofo']),
  new Set(['Latin', 'Han', 'Hangul'])
]

/** The scripts of a string's letters and digits, Common and Inherited left out. */
export function scriptsOf(value: string): Set<string> {
  const scripts = new Set<string>()
  for (const char of value) {
    const script = scriptOf(char)
    if (script !== 'Common' && script !== 'Inherited') scripts.add(script)
  }
  return scripts
}

/** True when a string mixes scripts the way a spoof does (`аdmin` with a Cyrillic а, `pаypal`, `admin١`). */
export function mixesScripts(value: string): boolean {
  const scripts = scriptsOf(value)
  if (scripts.size <= 1) return false
  return !ALLOWED_MIXES.some((allowed) => [...scripts].every((s) => allowed.has(s)))
}

const LATIN_LOOKING = /^[A-Za-z0-9_.@+-]+$/

/**
 * True for a name written wholly in another script that looks wholly Latin (`раура`, all Cyrillic, reads
 * `paypa`): UTS #39's whole-script confusable, found with the confusables skeleton of Unicode's
 * `confusables.txt` (the `unhomoglyph` package). `иван` or `张三` have no Latin look-alike and are fine.
 */
export function spoofsLatin(value: string): boolean {
  const scripts = scriptsOf(value)
  if (scripts.size === 0 || scripts.has('Latin')) return false
  return LATIN_LOOKING.test(unhomoglyph(value))
}

/**
 * A username as it is stored (NFKC, as Django's `normalize_username` stores it) and its key, or the
 * message that refuses it: the grammar and the length hold after normalization too (`½` becomes `1⁄2`),
 * and a name that mixes scripts confusably, or looks Latin while written in another script, is refused.
 */
export function normalizeUsername(
  raw: string
): { username: string; key: string } | { error: MessageKey; params?: Record<string, unknown> } {
  const username = raw.normalize('NFKC')
  if (!USERNAME.test(username)) return { error: 'username_invalid' }
  if ([...username].length > 150) return { error: 'max_length', params: { limit: 150 } }
  if (mixesScripts(username)) return { error: 'username_mixed_scripts' }
  if (spoofsLatin(username)) return { error: 'username_confusable' }
  return { username, key: identifierKey(username) }
}
