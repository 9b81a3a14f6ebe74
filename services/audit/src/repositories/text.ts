/** PostgreSQL text cannot hold NUL, which JSON can; dropped so that such a value is stored, not refused. */
export const pgText = (value: string, max = Infinity) => value.replace(/\u0000/g, '').slice(0, max)
