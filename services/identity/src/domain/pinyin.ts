import { pinyin } from 'pinyin-pro'

function syllables(name: string, pattern: 'pinyin' | 'first'): string {
  // `surname: 'head'` reads a leading family name as one (单 → shan, 曾 → zeng).
  const parts = pinyin(name, { toneType: 'none', type: 'array', pattern, surname: 'head', nonZh: 'consecutive' })
  return parts.join('').replace(/\s+/g, '').toLowerCase()
}

/** `张三` → `zhangsan`; lower case, no tones, no spaces, other characters kept. */
export function namePinyin(name: string): string {
  return syllables(name, 'pinyin')
}

/** `张三` → `zs`, so a search for initials finds the name. */
export function nameInitials(name: string): string {
  return syllables(name, 'first')
}
