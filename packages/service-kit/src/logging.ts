import type { FastifyServerOptions } from 'fastify'

/**
 * Logs are public: no line may carry a password, a bcrypt hash, a token, a resident ID number or a
 * phone. Three walls: the request line logs the path and the names of query parameters, never their
 * values (`?search=` is often a phone or a name); errors are logged without SQL text, bound parameters
 * or PostgreSQL's `detail` ("Failing row contains (...)"), keeping code, constraint and table; and pino
 * redacts the fields that carry secrets or personal data wherever code logs an object holding them.
 */

const SECRET_FIELDS = [
  'password',
  'old_password',
  'hash',
  'token',
  'access',
  'refresh',
  'authorization',
  'cookie',
  'identify_id',
  'identifyId',
  'phone',
  'contact_phone',
  'contactPhone'
]

/** pino (fast-redact) paths: each secret field at the top of a logged object and up to three levels down. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["set-cookie"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  ...SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`, `*.*.*.${f}`])
]

/** The path of a URL and the names of its query parameters, never their values. */
export function safeUrl(url: string | undefined): string | undefined {
  if (url === undefined) return undefined
  const q = url.indexOf('?')
  if (q === -1) return url
  const names = url
    .slice(q + 1)
    .split('&')
    .filter(Boolean)
    .map((pair) => pair.split('=')[0].slice(0, 40))
  return `${url.slice(0, q)}?${names.join('&')}`
}

// Properties of an error that may carry the values of a statement: pg's `detail` / `where` / `hint`, the
// SQL and parameters some drivers attach, MikroORM's `query`/`params`, a failing `data` payload.
const UNSAFE_ERROR_FIELDS = new Set(['detail', 'where', 'hint', 'internalQuery', 'query', 'sql', 'params', 'parameters', 'values', 'data', 'body', 'payload', 'message', 'stack', 'cause', 'previous'])
const SAFE_DB_FIELDS = ['code', 'errno', 'sqlState', 'severity', 'constraint', 'table', 'column', 'schema', 'dataType', 'routine']

interface ErrorLike {
  name?: string
  message?: string
  stack?: string
  code?: unknown
  cause?: unknown
  [key: string]: unknown
}

/** True for an error that came from PostgreSQL, raw (pg) or wrapped (MikroORM's DriverException). */
function isDatabaseError(error: ErrorLike): boolean {
  return (
    typeof error.sqlState === 'string' ||
    (typeof error.severity === 'string' && typeof error.routine === 'string') ||
    (typeof error.code === 'string' && /^[0-9A-Z]{5}$/.test(error.code) && 'constraint' in error) ||
    /Exception$/.test(error.name ?? '') && typeof error.code === 'string' && /^[0-9A-Z]{5}$/.test(error.code)
  )
}

/** The call frames of a stack without its first lines, which repeat the message. */
function framesOf(stack: string | undefined): string | undefined {
  if (!stack) return undefined
  return stack
    .split('\n')
    .filter((line) => /^\s+at /.test(line))
    .join('\n')
}

/**
 * pino's `err` serializer for the kit: type, code and call frames always; for a database error only the
 * fields that name what failed (code, constraint, table, column), never the message (MikroORM puts the
 * whole statement with its values there) nor `detail`; for other errors the message and own fields minus
 * anything that can hold statement values. Causes are serialized the same way.
 */
export function safeError(value: unknown, depth = 0): unknown {
  if (!value || typeof value !== 'object') return value
  const error = value as ErrorLike
  const out: Record<string, unknown> = { type: error.name ?? error.constructor?.name ?? 'Error' }
  if (isDatabaseError(error)) {
    for (const field of SAFE_DB_FIELDS) if (error[field] !== undefined && error[field] !== null) out[field] = error[field]
    out.message = `database error ${String(error.code ?? error.sqlState ?? '')}`.trim()
  } else {
    if (typeof error.message === 'string') out.message = error.message
    for (const [key, field] of Object.entries(error)) {
      if (UNSAFE_ERROR_FIELDS.has(key) || key in out) continue
      if (field === null || ['string', 'number', 'boolean'].includes(typeof field)) out[key] = field
    }
  }
  const frames = framesOf(error.stack)
  if (frames) out.stack = frames
  if (error.cause && depth < 3) out.cause = safeError(error.cause, depth + 1)
  return out
}

function safeRequest(req: { method?: string; url?: string; host?: string; ip?: string; socket?: { remotePort?: number } }) {
  return { method: req.method, url: safeUrl(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort }
}

type LoggerOption = FastifyServerOptions['logger']

/**
 * The logger options of every service and of the gateway: level, `service` name, redaction and the
 * safe serializers. Options a caller passes (tests pass a `stream`) are merged in; the safety is kept.
 */
export function loggerOptions(name: string, level: string, override?: LoggerOption): LoggerOption {
  if (override === false) return false
  const extra = override && typeof override === 'object' ? (override as Record<string, any>) : {}
  return {
    level,
    base: { service: name },
    ...extra,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { ...(extra.serializers ?? {}), err: safeError, error: safeError, req: safeRequest }
  } as LoggerOption
}
