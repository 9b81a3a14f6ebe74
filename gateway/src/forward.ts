import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'
import { Pool, type Dispatcher } from 'undici'
import { ApiError, REVOKED_SESSIONS_HEADER } from '@roster/service-kit'
import type { Upstream } from './routing.js'

// Not passed on, either way: hop-by-hop headers, and `expect` (this server already answered a client's
// `100-continue`; undici refuses to send it, which made every curl upload over 1 KiB a 503). `host` and
// `content-length` of a request are undici's to set (the upstream's host, the forwarded body's length).
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'expect'
]
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'host', 'content-length'])
const NOT_PASSED_BACK = new Set([...HOP_BY_HOP, REVOKED_SESSIONS_HEADER])

/** The largest answer a service may give (a page of the longest list is far smaller). */
export const MAX_ANSWER_BYTES = 32 * 1024 * 1024

/** The header names a `Connection` header lists (hop-by-hop too, RFC 9110 §7.6.1), lower-cased. */
function connectionNamed(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined
  const names = (Array.isArray(value) ? value.join(',') : value).split(',').map((name) => name.trim().toLowerCase())
  return names.some((name) => name !== '' && name !== 'close' && name !== 'keep-alive') ? new Set(names) : undefined
}

/** `headers` without the names in `drop` nor those its `Connection` names: a new object, the original kept. */
function copyHeaders(headers: IncomingHttpHeaders, drop: Set<string>): Record<string, string | string[]> {
  const named = connectionNamed(headers.connection)
  const out: Record<string, string | string[]> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value !== undefined && !drop.has(name) && !named?.has(name)) out[name] = value
  }
  return out
}

export interface ForwarderOptions {
  upstreams: Record<Upstream, string>
  /** Until an upstream's answer starts, and between its chunks: past it, a 504. */
  timeoutMs: number
  /** Memory for bodies and answers held at once; see `hold`. */
  budgetBytes: number
  /** Sessions an answer of identity ended (its internal header), remembered before the answer goes on. */
  revoked: (header: string) => void
}

/**
 * Forwards a request to the service that owns it over a keep-alive undici `Pool` per upstream (no
 * per-request agent, retry or stream plumbing: a proxy hop costs a few times a bare `node:http` answer),
 * reads the service's answer whole before sending it on (so a client that reads slowly, or not at all,
 * holds only its own connection, never one to a service) and answers a service that resets, refuses or
 * stalls with a 503 or 504 in the API's shape.
 */
export class Forwarder {
  readonly #pools: Record<Upstream, { pool: Pool; prefix: string }>
  /** Bytes of bodies and answers held in memory now (see `hold`). */
  #buffering = 0

  constructor(private readonly options: ForwarderOptions) {
    const pool = (base: string) => {
      const url = new URL(base)
      return {
        // 128 connections a service, one request at a time on each: a slow answer holds up no other.
        pool: new Pool(url.origin, { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 }),
        prefix: url.pathname.replace(/\/+$/, '')
      }
    }
    this.#pools = {
      identity: pool(options.upstreams.identity),
      directory: pool(options.upstreams.directory),
      audit: pool(options.upstreams.audit)
    }
  }

  /**
   * Whether `bytes` more fit in the memory budget; when they do they are counted until `response` closes.
   * Bodies being read and answers being sent take from one budget, so many slow clients cannot take the
   * process's memory: past it a new upload is a quick 503 and an answer is streamed.
   */
  hold(response: ServerResponse, bytes: number): boolean {
    if (this.#buffering + bytes > this.options.budgetBytes) return false
    if (response.closed) return true
    this.#buffering += bytes
    response.once('close', () => (this.#buffering -= bytes))
    return true
  }

  /**
   * For the server's `onClose`, when every client request is finished: whatever an upstream still owes (a
   * request whose client went away) is dropped rather than awaited for up to the upstream timeout.
   */
  async close(): Promise<void> {
    await Promise.all(Object.values(this.#pools).map(({ pool }) => pool.destroy()))
  }

  /**
   * Sends `request` (canonical `path`, re-encoded `query`) to `upstream` and its answer to the client.
   * Through undici's `dispatch` with a handler of its own: the answer's chunks are gathered as they come,
   * with no response stream, body mixin or promise per chunk between the socket and the reply
   * (`pool.request` cost ~15 % of the gateway's CPU per request more).
   */
  forward(
    request: FastifyRequest,
    reply: FastifyReply,
    upstream: Upstream,
    path: string,
    query: string
  ): Promise<FastifyReply> {
    const { pool, prefix } = this.#pools[upstream]
    const headers = copyHeaders(request.headers, NOT_FORWARDED)
    headers['x-forwarded-for'] = request.ip
    headers['x-forwarded-host'] = request.host
    headers['x-forwarded-proto'] = request.protocol
    headers['x-request-id'] = request.id
    const body = Buffer.isBuffer(request.body) ? request.body : undefined
    if (body !== undefined && headers['content-type'] === undefined)
      headers['content-type'] = 'application/octet-stream'
    return new Promise((resolve) => {
      pool.dispatch(
        {
          method: request.method as Dispatcher.HttpMethod,
          path: prefix + path + (query === '' ? '' : `?${query}`),
          headers,
          body,
          headersTimeout: this.options.timeoutMs,
          bodyTimeout: this.options.timeoutMs
        },
        new AnswerHandler(this, request, reply, upstream, resolve)
      )
    })
  }

  /** What an answer's headers say, applied to the reply; `true` when its body is to be held and sent whole. */
  answerStarted(reply: FastifyReply, upstream: Upstream, statusCode: number, headers: IncomingHttpHeaders): boolean {
    const revoked = headers[REVOKED_SESSIONS_HEADER]
    // Sessions an answer of identity ended are refused here before the client has the answer; the header
    // is internal and never passed on (nor believed from another service).
    if (typeof revoked === 'string' && upstream === 'identity') this.options.revoked(revoked)
    reply.code(statusCode).headers(copyHeaders(headers, NOT_PASSED_BACK))
    // HEAD has no body to hold anything up, and the service's Content-Length must stand. An answer of
    // unknown length, or one the memory budget has no room for, is streamed as it comes.
    const length = Number(headers['content-length'])
    return (
      reply.request.method !== 'HEAD' &&
      Number.isFinite(length) &&
      length <= MAX_ANSWER_BYTES &&
      this.hold(reply.raw, length)
    )
  }

  // Whatever the upstream did (refused, reset, timed out, answered garbage) the client gets an answer in
  // the API's shape: 504 when it took too long, 503 otherwise.
  failed(request: FastifyRequest, reply: FastifyReply, upstream: Upstream, error: unknown): FastifyReply {
    request.log.error({ err: error, upstream }, 'upstream failed')
    if (reply.sent || reply.raw.destroyed) return reply
    const code = (error as { code?: string }).code
    const timedOut = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT'
    const status = timedOut ? 504 : 503
    reply.removeHeader('content-length')
    if (status === 503) reply.header('retry-after', '1')
    return reply.code(status).send({
      detail: new ApiError(status, timedOut ? 'gateway_timeout' : 'service_unavailable').body(request.lang).detail
    })
  }
}

/**
 * One forwarded request's answer, as undici's dispatcher reports it: headers, chunks, end or error. The
 * chunks of an answer held whole (see `answerStarted`) are gathered, at most its Content-Length; any other
 * answer is streamed to the client, the upstream paused while the client's side is full.
 */
class AnswerHandler implements Dispatcher.DispatchHandler {
  #chunks: Buffer[] = []
  #size = 0
  #length = 0
  /** Set once the answer is streamed (see `answerStarted`). */
  #stream: Readable | undefined
  #settled = false

  constructor(
    private readonly forwarder: Forwarder,
    private readonly request: FastifyRequest,
    private readonly reply: FastifyReply,
    private readonly upstream: Upstream,
    private readonly resolve: (reply: FastifyReply) => void
  ) {}

  onRequestStart(): void {}

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200 || statusCode > 599) {
      controller.abort(new Error(`an answer with status ${statusCode}`))
      return
    }
    if (this.forwarder.answerStarted(this.reply, this.upstream, statusCode, headers)) {
      this.#length = Number(headers['content-length'])
      return
    }
    const stream = new Readable({ read: () => controller.resume() })
    // An error of the answer's stream (the upstream reset after the headers) ends the client's answer cut
    // short, which is all that is left to do; it is logged by #fail.
    stream.on('error', () => undefined)
    this.#stream = stream
    this.#settle(this.reply.send(stream))
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#stream !== undefined) {
      if (!this.#stream.push(chunk)) controller.pause()
      return
    }
    this.#size += chunk.length
    if (this.#size > this.#length) {
      controller.abort(new Error(`an answer longer than its Content-Length (${this.#length} bytes)`))
      return
    }
    this.#chunks.push(chunk)
  }

  onResponseEnd(): void {
    if (this.#stream !== undefined) {
      this.#stream.push(null)
      return
    }
    const chunks = this.#chunks
    this.#settle(this.reply.send(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.#size)))
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#stream !== undefined) {
      this.request.log.error({ err: error, upstream: this.upstream }, 'upstream failed')
      this.#stream.destroy(error)
      return
    }
    this.#settle(this.forwarder.failed(this.request, this.reply, this.upstream, error))
  }

  #settle(reply: FastifyReply): void {
    if (this.#settled) return
    this.#settled = true
    this.resolve(reply)
  }
}
