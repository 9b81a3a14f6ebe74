import pino from 'pino'
import {
  LogController,
  type FastifyBaseLogger,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions
} from 'fastify'

/**
 * Logs are public: no line may carry a password, a bcrypt hash, a token, a resident ID number or a
 * phone. Three walls: the request line logs the path and the names of query parameters, never their
 * values (`?search=` is often a phone or a name); errors are logged without SQL text, bound parameters
 * or PostgreSQL's `detail` ("Failing row contains (...)"), keeping code, constraint and table; and the
 * fields that carry secrets or personal data are replaced wherever code logs an object holding them.
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

const SECRET = new Set([...SECRET_FIELDS, 'set-cookie'])
const CENSOR = '[redacted]'
// Logged under these keys, a value goes through the kit's serializers (`req`, `err`, `error`) or
// Fastify's (`res`), which emit only safe fields: nothing in them to look through.
const SERIALIZED = new Set(['req', 'res', 'err', 'error'])

/**
 * `value` with every secret field (SECRET_FIELDS, at its top and up to three levels down) replaced by
 * `[redacted]`; the same object when it has none (the usual case, so a log line copies nothing).
 * This replaces pino's `redact` with wildcard paths (`*.*.*.phone`), which cost ~30 µs per line
 * (measured: 34 µs vs 3.6 µs for Fastify's request line), more than a whole request of node:http.
 */
function scrubbed(value: unknown, depth: number): unknown {
  if (depth > 3 || value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || value instanceof Date)
    return value
  if (Array.isArray(value)) {
    let out: unknown[] | undefined
    for (let i = 0; i < value.length; i++) {
      const next = scrubbed(value[i], depth + 1)
      if (next !== value[i]) (out ??= value.slice())[i] = next
    }
    return out ?? value
  }
  let out: Record<string, unknown> | undefined
  for (const key of Object.keys(value)) {
    const field = (value as Record<string, unknown>)[key]
    const next = SECRET.has(key) ? CENSOR : scrubbed(field, depth + 1)
    if (next !== field) (out ??= { ...(value as Record<string, unknown>) })[key] = next
  }
  return out ?? value
}

/** A logged object without its secret fields; see `scrubbed`. */
export function scrubLogObject(object: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined
  for (const key of Object.keys(object)) {
    const field = object[key]
    const next = SECRET.has(key) ? CENSOR : SERIALIZED.has(key) ? field : scrubbed(field, 1)
    if (next !== field) (out ??= { ...object })[key] = next
  }
  return out ?? object
}

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
const UNSAFE_ERROR_FIELDS = new Set([
  'detail',
  'where',
  'hint',
  'internalQuery',
  'query',
  'sql',
  'params',
  'parameters',
  'values',
  'data',
  'body',
  'payload',
  'message',
  'stack',
  'cause',
  'previous',
  ...SECRET
])
const SAFE_DB_FIELDS = [
  'code',
  'errno',
  'sqlState',
  'severity',
  'constraint',
  'table',
  'column',
  'schema',
  'dataType',
  'routine'
]

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
    (/Exception$/.test(error.name ?? '') && typeof error.code === 'string' && /^[0-9A-Z]{5}$/.test(error.code))
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
    for (const field of SAFE_DB_FIELDS)
      if (error[field] !== undefined && error[field] !== null) out[field] = error[field]
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

function safeRequest(req: {
  method?: string
  url?: string
  host?: string
  ip?: string
  socket?: { remotePort?: number }
}) {
  return {
    method: req.method,
    url: safeUrl(req.url),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort
  }
}

type LoggerOption = FastifyServerOptions['logger']

/** Bytes a log line may wait in memory for others before they are written together. */
const LOG_BUFFER_BYTES = 4096
/** And at most this long: a quiet process's lines still come out within a moment. */
const LOG_FLUSH_MS = 1000

let destination: ReturnType<typeof pino.destination> | undefined

/**
 * Standard output through one buffered, asynchronous sonic-boom per process, shared by every logger: lines
 * are gathered up to 4 KiB (or one second) and written together instead of one write(2) per line, which
 * cost more than the rest of an access line. pino registers it to be flushed synchronously when the
 * process exits (a signal handled by close-with-grace, `process.exit`, a crash it logs); only a SIGKILL
 * loses the last second of lines.
 */
function bufferedStdout(): ReturnType<typeof pino.destination> {
  if (destination === undefined) {
    const stream = pino.destination({ dest: 1, minLength: LOG_BUFFER_BYTES, sync: false })
    destination = stream
    setInterval(() => {
      try {
        stream.flush()
      } catch {
        // not ready yet or closed: the next tick or the exit flush writes it
      }
    }, LOG_FLUSH_MS).unref()
  }
  return destination
}

/**
 * The logger options of every service and of the gateway: level, `service` name, the removal of secret
 * fields and the safe serializers. Options a caller passes (tests pass a `stream`) are merged in; the
 * safety is kept.
 */
export function loggerOptions(name: string, level: string, override?: LoggerOption): LoggerOption {
  if (override === false) return false
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- pino's logger options are merged as they come
  const extra = override && typeof override === 'object' ? (override as Record<string, any>) : {}
  const formatters = extra.formatters ?? {}
  return {
    level,
    base: { service: name },
    ...(extra.stream === undefined && extra.transport === undefined ? { stream: bufferedStdout() } : {}),
    ...extra,
    formatters: {
      ...formatters,
      log: (object: Record<string, unknown>) => scrubLogObject(formatters.log ? formatters.log(object) : object)
    },
    // a child logger's bindings skip `formatters`: pino's redaction of top-level keys (cheap, no wildcard) covers them
    redact: { paths: [...SECRET].map((key) => JSON.stringify([key])), censor: CENSOR },
    serializers: { ...(extra.serializers ?? {}), err: safeError, error: safeError, req: safeRequest }
  } as LoggerOption
}

/** `info` where the line of every request is wanted (the gateway), `debug` where it repeats another's. */
export type AccessLogLevel = 'info' | 'debug'

/**
 * One access-log line per request instead of Fastify's two ("incoming request", "request completed"):
 * method, path with the names of its query parameters but not their values, status and milliseconds, at
 * `level`; at `error` with the error when the request failed, whatever the level. Every service's and the
 * gateway's `logController`: the gateway's lines are at `info` (it sees every public request, with the
 * status and time its client got), a service's at `debug` (`LOG_LEVEL=debug` shows them), so a request
 * through the gateway costs one line system-wide, not two.
 */
export class AccessLogController extends LogController {
  constructor(private readonly level: AccessLogLevel = 'info') {
    super()
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) {
      reply.log.error({ ...this.#line(request, reply), err: error }, 'request errored')
      return
    }
    // pino's own check (Fastify's logger type leaves it out): no line object is built for a level that is off.
    if (!(reply.log as FastifyBaseLogger & { isLevelEnabled(level: string): boolean }).isLevelEnabled(this.level))
      return
    reply.log[this.level](this.#line(request, reply), 'request')
  }

  #line(request: FastifyRequest, reply: FastifyReply) {
    return {
      method: request.method,
      url: safeUrl(request.url),
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10
    }
  }

  // Fastify's says `Route GET:/path?phone=139… not found`, query values included; the access line suffices.
  override routeNotFound(): void {}
}
