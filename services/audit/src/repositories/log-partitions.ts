import type { EntityManager } from '@mikro-orm/postgresql'
import { sql, transactional } from '@roster/service-kit'

/**
 * The log's monthly partitions (see the migration that partitions `user_log`): makes the partitions of this
 * month and the `ahead` next ones (and of any month whose rows wait in the default partition), then, with a
 * retention, drops every month that ended `retentionDays` ago or earlier, whole. Idempotent; replicas doing
 * it at once wait for each other on the schema's advisory lock. Answers the partitions dropped.
 */
export async function maintainLogPartitions(
  em: EntityManager,
  options: { ahead: number; retentionDays?: number }
): Promise<string[]> {
  return transactional(em, async (t) => {
    await sql(t, 'select user_log_make_partitions(?)', [options.ahead])
    if (options.retentionDays === undefined) return []
    const cutoff = new Date(Date.now() - options.retentionDays * 86_400_000)
    const dropped = await sql<{ name: string }>(t, 'select user_log_drop_partitions(?) as name', [cutoff])
    return dropped.map((row) => row.name)
  })
}
