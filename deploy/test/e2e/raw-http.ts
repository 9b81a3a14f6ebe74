import { connect, type Socket } from 'node:net'

/**
 * HTTP/1.1 over a bare socket, for requests that fetch/undici refuse to send (raw bytes in the target,
 * control characters or bad Host headers, invalid UTF-8 in the body) and for clients that misbehave on
 * purpose (slow or stalled). The request is sent as given, byte for byte.
 */

export interface RawResponse {
  status: number
  /** Header names lower-cased; a repeated header keeps its last value. */
  headers: Record<string, string>
  body: Buffer
  /** The bytes as received, for a report when something is wrong. */
  raw: Buffer
}

export class RawHttpError extends Error {}

/** Builds a request from parts; every part is sent exactly as given (strings as UTF-8, Buffers as they are). */
export function buildRequest(
  method: string,
  target: string | Buffer,
  headers: readonly (readonly [string, string | Buffer])[],
  body?: Buffer
): Buffer {
  const parts: Buffer[] = [Buffer.from(`${method} `), Buffer.from(target as string), Buffer.from(' HTTP/1.1\r\n')]
  for (const [name, value] of headers)
    parts.push(Buffer.from(`${name}: `), Buffer.from(value as string), Buffer.from('\r\n'))
  if (body !== undefined) parts.push(Buffer.from(`Content-Length: ${body.length}\r\n`))
  parts.push(Buffer.from('Connection: close\r\n\r\n'))
  if (body !== undefined) parts.push(body)
  return Buffer.concat(parts)
}

function decodeChunked(body: Buffer): Buffer {
  const out: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at)
    if (lineEnd < 0) throw new RawHttpError('truncated chunked body')
    const size = Number.parseInt(body.subarray(at, lineEnd).toString('latin1').split(';')[0]!, 16)
    if (!Number.isFinite(size)) throw new RawHttpError('bad chunk size')
    if (size === 0) return Buffer.concat(out)
    out.push(body.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
}

/** Parses one complete response (the server closed the connection after it). */
export function parseResponse(raw: Buffer): RawResponse {
  const headEnd = raw.indexOf('\r\n\r\n')
  if (headEnd < 0)
    throw new RawHttpError(`no complete response head in ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`)
  const [statusLine, ...lines] = raw.subarray(0, headEnd).toString('latin1').split('\r\n')
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)
  if (match === null) throw new RawHttpError(`bad status line ${JSON.stringify(statusLine)}`)
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  let body = raw.subarray(headEnd + 4)
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = decodeChunked(body)
  else if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']))
  return { status: Number(match[1]), headers, body, raw }
}

function isComplete(raw: Buffer): boolean {
  const headEnd = raw.indexOf('\r\n\r\n')
  if (headEnd < 0) return false
  const head = raw.subarray(0, headEnd).toString('latin1')
  const body = raw.subarray(headEnd + 4)
  if (/^HTTP\/1\.[01] (1\d\d|204|304) /.test(head)) return true
  if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head))
    return body.includes('\r\n0\r\n\r\n') || body.subarray(0, 5).equals(Buffer.from('0\r\n\r\n'))
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)
  return length !== null && body.length >= Number(length[1])
}

/** Sends `request` on a new connection and reads until the server closes it. */
export function rawRequest(
  port: number,
  request: Buffer,
  { host = '127.0.0.1', timeoutMs = 30_000 } = {}
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host })
    const chunks: Buffer[] = []
    socket.setTimeout(timeoutMs, () => {
      socket.destroy()
      reject(new RawHttpError(`no complete answer within ${timeoutMs} ms`))
    })
    socket.on('data', (chunk) => {
      chunks.push(chunk)
      // A complete answer counts even when the server keeps the connection open despite `Connection: close`.
      if (isComplete(Buffer.concat(chunks))) finish()
    })
    // The server may answer and close before it has read the whole request (a 413, a refused head):
    // a reset after an answer is still that answer.
    let settled = false
    const finish = () => {
      if (settled) return
      settled = true
      socket.destroy()
      try {
        resolve(parseResponse(Buffer.concat(chunks)))
      } catch (error) {
        reject(error)
      }
    }
    socket.on('end', finish)
    socket.on('close', finish)
    socket.on('error', (error) => {
      if (chunks.length > 0) finish()
      else if (!settled) {
        settled = true
        reject(error)
      }
    })
    socket.write(request)
  })
}

/** Resolves when the server closes (or resets) `socket`. */
export function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed || socket.closed) return resolve()
    socket.once('close', () => resolve())
  })
}
