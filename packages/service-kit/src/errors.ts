import type { Lang, MessageKey } from './messages.js'
import { message } from './messages.js'

/** A message to be rendered in the client's language when the error is sent. */
export interface LocalMessage {
  key: MessageKey
  params?: Record<string, unknown>
}
export type FieldErrorTree = { [field: string]: LocalMessage[] | FieldErrorTree }

/** `Error.stackTraceLimit` while an ApiError is made: see `withoutStack`. */
let savedStackTraceLimit = Error.stackTraceLimit

/** `message`, with V8's stack capture off until `restoreStack` (which the constructor calls right after). */
function withoutStack(message: string): string {
  savedStackTraceLimit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  return message
}

function restoreStack(): void {
  Error.stackTraceLimit = savedStackTraceLimit
}

/**
 * An error a client is meant to see, rendered by the error handler in the DRF shape: `{"detail"}`, plus
 * `code` only where the API shows one (invalid tokens, as simplejwt does).
 * It is an answer, not a fault: it carries no stack (nothing logs one; its log line is the status and key),
 * since capturing the stack was a tenth of the gateway's CPU per 404 and costs as much on every 401, 403 and
 * 400 a client provokes, floods included.
 */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly key: MessageKey,
    readonly params: Record<string, unknown> = {},
    readonly code?: string,
    readonly headers: Record<string, string> = {}
  ) {
    super(withoutStack(key))
    restoreStack()
    this.name = 'ApiError'
  }

  body(lang: Lang): Record<string, unknown> {
    const body: Record<string, unknown> = { detail: message(this.key, lang, this.params) }
    if (this.code) body.code = this.code
    return body
  }
}

export class NotAuthenticatedError extends ApiError {
  constructor() {
    super(401, 'not_authenticated')
  }
}

export class TokenInvalidError extends ApiError {
  constructor(key: 'token_not_valid' | 'refresh_not_valid' = 'token_not_valid') {
    super(401, key, {}, 'token_not_valid')
  }
}

export class PermissionDeniedError extends ApiError {
  constructor() {
    super(403, 'permission_denied')
  }
}

export class NotFoundError extends ApiError {
  constructor() {
    super(404, 'not_found')
  }
}

/** The largest request body any Roster server accepts (API.md: over 1 MiB is `413`). */
export const BODY_LIMIT_BYTES = 1024 * 1024

export class PayloadTooLargeError extends ApiError {
  constructor() {
    super(413, 'payload_too_large', { limit: BODY_LIMIT_BYTES })
  }
}

export class ThrottledError extends ApiError {
  constructor(waitSeconds: number) {
    const wait = Math.max(1, Math.ceil(waitSeconds))
    super(429, 'throttled', { wait }, undefined, { 'retry-after': String(wait) })
  }
}

/** `400` with field errors; build one with `FieldErrors` to report every bad field at once. */
export class ValidationError extends ApiError {
  constructor(readonly fields: FieldErrorTree) {
    super(400, 'invalid')
    this.name = 'ValidationError'
  }

  override body(lang: Lang): Record<string, unknown> {
    return renderTree(this.fields, lang)
  }
}

function renderTree(tree: FieldErrorTree, lang: Lang): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [field, value] of Object.entries(tree)) {
    out[field] = Array.isArray(value) ? value.map((m) => message(m.key, lang, m.params)) : renderTree(value, lang)
  }
  return out
}

/** Collects field errors from several checks; `throwIfAny()` raises them together. */
export class FieldErrors {
  readonly tree: FieldErrorTree = {}

  add(path: string | string[], key: MessageKey, params?: Record<string, unknown>): this {
    const parts = Array.isArray(path) ? path : [path]
    let node = this.tree
    for (const part of parts.slice(0, -1)) {
      const next = node[part]
      if (Array.isArray(next)) return this // a field already failed as a whole; keep that message
      node = (node[part] ??= {}) as FieldErrorTree
    }
    const leaf = parts[parts.length - 1]
    const existing = node[leaf]
    if (existing === undefined) node[leaf] = [{ key, params }]
    else if (Array.isArray(existing) && !existing.some((m) => m.key === key)) existing.push({ key, params })
    return this
  }

  has(path: string | string[]): boolean {
    const parts = Array.isArray(path) ? path : [path]
    let node: FieldErrorTree | LocalMessage[] | undefined = this.tree
    for (const part of parts) {
      if (node === undefined || Array.isArray(node)) return Array.isArray(node)
      node = node[part]
    }
    return node !== undefined
  }

  get empty(): boolean {
    return Object.keys(this.tree).length === 0
  }

  throwIfAny(): void {
    if (!this.empty) throw new ValidationError(this.tree)
  }
}
