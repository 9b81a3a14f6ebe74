import type { EntityManager } from '@mikro-orm/postgresql'

/** What is used here of a pg client of the pool (audit does not depend on pg itself). */
interface PgConnection {
  query(config: { name: string; text: string; values: unknown[]; rowMode: 'array' }): Promise<{ rows: unknown[][] }>
}

/**
 * Rows of a named (prepared) statement as arrays, in the order of its select list: the kit's `preparedQuery`
 * (one of the pool's connections, no MikroORM or knex in between, PostgreSQL plans it once per connection)
 * with pg's `rowMode: 'array'`, so no object is built per row only to be copied into the representation.
 * On a page of 100 user logs pg's own parsing fell from ~330 to ~230 µs of Node CPU (a bare pg client, alternated
 * runs). Kept here rather than in the kit's orm.ts (another package's file); the same helper is in directory.
 * For a hot read outside any transaction; `text` uses `$1`…; one `name` must always carry the same `text`.
 */
export async function preparedRows(
  em: EntityManager,
  name: string,
  text: string,
  values: unknown[]
): Promise<unknown[][]> {
  if (em.getTransactionContext()) throw new Error(`preparedRows(${name}) inside a transaction`)
  const client = em.getConnection().getKnex().client as {
    acquireConnection(): Promise<PgConnection>
    releaseConnection(connection: PgConnection): Promise<void>
  }
  const connection = await client.acquireConnection()
  try {
    return (await connection.query({ name, text, values, rowMode: 'array' })).rows
  } finally {
    await client.releaseConnection(connection)
  }
}
