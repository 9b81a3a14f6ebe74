import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Pool } from 'undici'
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

  /** Sends `request` (canonical `path`, re-encoded `query`) to `upstream` and its answer to the client. */
  async forward(
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
    let answer: Awaited<ReturnType<Pool['request']>>
    try {
      answer = await pool.request({
        method: request.method as 'GET',
        path: prefix + path + (query === '' ? '' : `?${query}`),
        headers,
        body,
        headersTimeout: this.options.timeoutMs,
        bodyTimeout: this.options.timeoutMs
      })
    } catch (error) {
      return this.#failed(request, reply, upstream, error)
    }
    if (answer.statusCode < 200 || answer.statusCode > 599) {
      // Read and dropped (a bare `destroy()` would emit an error nobody listens to, and crash the process).
      answer.body.dump().catch(() => undefined)
      return this.#failed(request, reply, upstream, new Error(`an answer with status ${answer.statusCode}`))
    }
    const out = copyHeaders(answer.headers, NOT_PASSED_BACK)
    const revoked = answer.headers[REVOKED_SESSIONS_HEADER]
    // Sessions an answer of identity ended are refused here before the client has the answer; the header
    // is internal and never passed on (nor believed from another service).
    if (typeof revoked === 'string' && upstream === 'identity') this.options.revoked(revoked)
    reply.code(answer.statusCode).headers(out)
    const stream = answer.body
    // HEAD has no body to hold anything up, and the service's Content-Length must stand. An answer of
    // unknown length, or one the memory budget has no room for, is streamed as it comes.
    const length = Number(answer.headers['content-length'])
    if (
      request.method === 'HEAD' ||
      !Number.isFinite(length) ||
      length > MAX_ANSWER_BYTES ||
      !this.hold(reply.raw, length)
    ) {
      return reply.send(stream)
    }
    try {
      return reply.send(await readWhole(stream, length))
    } catch (error) {
      return this.#failed(request, reply, upstream, error)
    }
  }

  // Whatever the upstream did (refused, reset, timed out, answered garbage) the client gets an answer in
  // the API's shape: 504 when it took too long, 503 otherwise.
  #failed(request: FastifyRequest, reply: FastifyReply, upstream: Upstream, error: unknown): FastifyReply {
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
 * All of an answer's body, at most `length` bytes (its declared Content-Length); more is an error. Read with
 * `data` events: an async iterator over the stream cost ~5 % of the gateway's CPU per request.
 */
function readWhole(stream: Readable, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > length) stream.destroy(new Error(`an answer longer than its Content-Length (${length} bytes)`))
      else chunks.push(chunk)
    })
    stream.once('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)))
    stream.once('error', reject)
  })
}
