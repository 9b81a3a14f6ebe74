import type { ConstraintTable } from '@roster/service-kit'

/**
 * What each unique constraint of audit's schema means to a client when a concurrent request makes a
 * write violate it (the kit's error handler reads this table; see `constraintError`).
 */
export const auditConstraints: ConstraintTable = {
  // Two admins listing the same patient at once: the partial unique index lets one through.
  black_list_active_patient_uq: { field: 'patient', key: 'already_blacklisted' }
}
