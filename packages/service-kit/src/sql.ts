/** `%text%` for `ilike`, with the pattern characters of `text` taken literally. */
export function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
}

/** A unique index refused the write (PostgreSQL 23505), whether MikroORM wrapped the error or not. */
export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: string })?.code === '23505' || (error as Error)?.name === 'UniqueConstraintViolationException'
}
