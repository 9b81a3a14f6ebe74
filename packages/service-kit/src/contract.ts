import { FormatRegistry } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { EVENTS, type EventData, type EventSubject } from '@roster/contracts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// TypeBox checks formats only once they are registered.
if (!FormatRegistry.Has('uuid')) FormatRegistry.Set('uuid', (v) => UUID.test(v))
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (v) => /^\d{4}-\d\d-\d\dT/.test(v) && !Number.isNaN(Date.parse(v)))
}

/**
 * Whether `data` is what the contract says an event of `subject` carries: the check every fact received
 * from another service passes, by event (consumers) or by read-through, before anything is done with it.
 */
export function isEventData<S extends EventSubject>(subject: S, data: unknown): data is EventData<S> {
  return Value.Check(EVENTS[subject], data)
}
