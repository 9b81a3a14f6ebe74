import type { EntityManager } from '@mikro-orm/postgresql'
import { FieldErrors, ValidationError } from '@roster/service-kit'

/** Tables whose `name` is unique, case-insensitively (each has a unique index on `lower(name)`). */
export type NamedTable = 'app_group' | 'occupation'


export function uniqueNameError(): ValidationError {
  return new ValidationError(new FieldErrors().add('name', 'unique').tree)
}

// A unique-index race lost between the check and the commit is the same `400`, through the kit's
// constraint table (`domain/constraints.ts`).

/** Whether another row of `table` has this name; runs in `em`'s transaction when there is one. */
export async function nameTaken(em: EntityManager, table: NamedTable, name: string, exceptId = 0): Promise<boolean> {
  const rows = await em
    .getConnection()
    .execute(`select 1 from ${table} where lower(name) = lower(?) and id <> ?`, [name, exceptId], 'all', em.getTransactionContext())
  return rows.length > 0
}

/**
 * Text fields are trimmed as Django REST Framework's `CharField` does; a name left empty is `blank`.
 * Reports into `errors` and answers the trimmed value.
 */
export function cleanName(errors: FieldErrors, name: string): string {
  const trimmed = name.trim()
  if (trimmed === '') errors.add('name', 'blank')
  return trimmed
}
