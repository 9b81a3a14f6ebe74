import { FieldErrors, ValidationError } from '@roster/service-kit'

export function uniqueNameError(): ValidationError {
  return new ValidationError(new FieldErrors().add('name', 'unique').tree)
}

// A unique-index race lost between the check and the commit is the same `400`, through the kit's
// constraint table (`domain/constraints.ts`).

/**
 * Text fields are trimmed as Django REST Framework's `CharField` does; a name left empty is `blank`.
 * Reports into `errors` and answers the trimmed value.
 */
export function cleanName(errors: FieldErrors, name: string): string {
  const trimmed = name.trim()
  if (trimmed === '') errors.add('name', 'blank')
  return trimmed
}
