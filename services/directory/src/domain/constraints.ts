import type { ConstraintTable } from '@roster/service-kit'

/**
 * What each unique or foreign-key constraint of the directory's schema means to a client when a concurrent
 * request makes a write violate it (the kit's error handler reads this table; see `constraintError`).
 */
export const directoryConstraints: ConstraintTable = {
  app_group_name_uq: { field: 'name', key: 'unique' },
  occupation_name_uq: { field: 'name', key: 'unique' },
  // The group named in the path was deleted meanwhile.
  group_profile_group_id_fkey: 'not_found'
}
