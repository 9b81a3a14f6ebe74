import { OPERATION_LOGIN_FAILED, type UserLog } from '@roster/contracts'
import { formatTime } from '@roster/service-kit'
import type { UserLogRow } from '../entities/index.js'

export function renderUserLog(row: Omit<UserLogRow, 'eventId'>, timeZone: string): UserLog {
  const log: UserLog = {
    id: row.id,
    user: row.user,
    ip: row.ip,
    operation: row.operation,
    operator: row.operator,
    operate_time: formatTime(row.operateTime, timeZone),
    user_agent: row.userAgent
  }
  if (row.operation === OPERATION_LOGIN_FAILED) log.username = row.username
  return log
}
