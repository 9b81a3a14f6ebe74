import { ApiError, type ConstraintTable } from '@roster/service-kit'

/**
 * What each unique or foreign-key constraint of identity's schema means to a client when a concurrent
 * request makes a write violate it (the kit's error handler reads this table; see `constraintError`).
 */
export const identityConstraints: ConstraintTable = {
  app_user_username_key_uq: { field: 'username', key: 'username_taken' },
  app_user_email_uq: { field: 'email', key: 'email_taken' },
  // The user named in the path was deleted meanwhile.
  profile_user_id_fkey: 'not_found',
  // A user named in the body of `POST /api/groups/{pk}/users/` was deleted meanwhile.
  membership_user_id_fkey: { field: 'users', key: 'does_not_exist' },
  // The account was deleted while its login was being checked: as for an unknown account.
  session_user_id_fkey: () => new ApiError(401, 'login_failed')
}
