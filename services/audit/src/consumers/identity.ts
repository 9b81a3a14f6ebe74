import type { ConsumerSpec } from '@roster/service-kit'
import { OPERATION_LOGIN, OPERATION_LOGIN_FAILED, OPERATION_LOGOUT } from '@roster/contracts'
import { recordUserLog } from '../repositories/user-logs.js'
import { applyUserFact, forgetUser } from '../repositories/known-users.js'

/**
 * Audit's one durable consumer of `IDENTITY`: every login, logout and failed attempt becomes one log
 * row (its time is when it happened, from the envelope), and `identity.user.*` keeps the known user ids.
 * The kit validates each payload against its contract and runs each handler in one transaction with
 * the record of the event id, so a redelivery has no second effect.
 */
export function identityConsumer(): ConsumerSpec {
  return {
    durable: 'audit-identity',
    stream: 'IDENTITY',
    // Log rows carry their own time and known users keep tombstones, so order does not matter here.
    concurrency: 8,
    handlers: {
      'identity.session.login': (data, event, em) =>
        recordUserLog(em, {
          eventId: event.id,
          user: data.user_id,
          username: data.username,
          ip: data.ip,
          operation: OPERATION_LOGIN,
          operator: data.user_id,
          operateTime: event.occurred_at,
          userAgent: data.user_agent
        }),
      'identity.session.logout': (data, event, em) =>
        recordUserLog(em, {
          eventId: event.id,
          user: data.user_id,
          username: '',
          ip: data.ip,
          operation: OPERATION_LOGOUT,
          operator: data.operator,
          operateTime: event.occurred_at,
          userAgent: data.user_agent
        }),
      'identity.session.login_failed': (data, event, em) =>
        recordUserLog(em, {
          eventId: event.id,
          user: data.user_id,
          username: data.username,
          ip: data.ip,
          operation: OPERATION_LOGIN_FAILED,
          operator: null,
          operateTime: event.occurred_at,
          userAgent: data.user_agent
        }),
      'identity.user.created': (fact, _event, em) => applyUserFact(em, fact),
      'identity.user.updated': (fact, _event, em) => applyUserFact(em, fact),
      'identity.user.deleted': (fact, _event, em) => forgetUser(em, fact)
    }
  }
}
