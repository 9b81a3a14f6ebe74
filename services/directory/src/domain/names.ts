import { FieldErrors, ValidationError } from '@roster/service-kit'

export function uniqueNameError(): ValidationError {
  return new ValidationError(new FieldErrors().add('name', 'unique').tree)
}

// A unique-index race lost between the check and the commit is the same `400`, through the kit's
// constraint table (`domain/constraints.ts`).

/**
 * A name left empty is `blank`, as Django REST Framework's `CharField` says (the kit's input rule has already
 * trimmed it). Reports into `errors` and answers the name.
 */
export function cleanName(errors: FieldErrors, name: string): string {
  if (name === '') errors.add('name', 'blank')
  return name
}
