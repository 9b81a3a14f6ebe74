import t from 'tap'
import { connect, type Socket } from 'node:net'
import { startE2E, client } from './helper.js'
import { closed } from './raw-http.js'

// Clients that hold connections open on purpose: slow headers (slowloris) and slow bodies (a large
// Content-Length, a few bytes, then one byte a second), on 180 connections at once, part of them reset
// while they are held. The gateway must stay up, other clients' reads must keep being answered, and the
// server's own timeouts must close what stays stalled.

t.setTimeout(300_000)

const SLOW_HEADERS = 50
const SLOW_BODIES = 130
/** How long the server may take to cut off a stalled client: generous, the machine is shared. */
const CLOSE_BOUND_MS = 120_000
/** A read that has not answered in this long counts as not answered at all. */
const READ_BOUND_MS = 20_000

interface Stalled {
  socket: Socket
  kind: 'headers' | 'body'
  closedByServer: boolean
  /** What the server wrote before it closed, if anything (a 408 is welcome). */
  received: Buffer[]
  done: Promise<void>
}

function stall(port: number, kind: Stalled['kind'], index: number): Promise<Stalled> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' })
    const stalled: Stalled = { socket, kind, closedByServer: false, received: [], done: closed(socket) }
    let trickle: NodeJS.Timeout | undefined
    socket.on('data', (chunk) => stalled.received.push(chunk))
    socket.on('end', () => (stalled.closedByServer = true))
    socket.on('error', () => {})
    socket.on('close', () => clearInterval(trickle))
    socket.once('connect', () => {
      if (kind === 'headers') {
        socket.write(`GET /api/users/ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow-${index}: `)
        trickle = setInterval(() => socket.writable && socket.write('a'), 1_000)
      } else {
        socket.write(
          `POST /api/users/ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"u`
        )
        trickle = setInterval(() => socket.writable && socket.write('u'), 1_000)
      }
      resolve(stalled)
    })
    socket.once('error', reject)
  })
}

t.test(
  'slow headers and slow bodies on 180 connections: the gateway stays up, reads go on, stalls are cut off',
  async (t) => {
    const system = await startE2E(t, ['identity', 'directory', 'audit', 'gateway'])
    const api = client(system.gatewayUrl!)
    const port = Number(new URL(system.gatewayUrl!).port)
    const registered = await api('POST', '/api/users/', { body: { username: 'slow-reader', password: 'password-1' } })
    t.equal(registered.status, 200)
    const token = (await api('POST', '/api/auth/', { body: { username: 'slow-reader', password: 'password-1' } })).json
      .access
    const read = async () => {
      const res = await fetch(`${system.gatewayUrl}/api/users/${registered.json.id}/`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(READ_BOUND_MS)
      }).catch((error: Error) => ({ status: `no answer (${error.name})`, text: async () => '' }))
      await res.text()
      return res.status
    }

    const stalled = await Promise.all([
      ...Array.from({ length: SLOW_HEADERS }, (_, i) => stall(port, 'headers', i)),
      ...Array.from({ length: SLOW_BODIES }, (_, i) => stall(port, 'body', i))
    ])
    t.comment(`${stalled.length} stalled connections open`)
    t.teardown(() => stalled.forEach((s) => s.socket.destroy()))

    // While they trickle, other clients read through the gateway (routed to identity, where the uploads go).
    const reads: (number | string)[] = []
    const startedAt = Date.now()
    while (reads.length < 15 || Date.now() - startedAt < 15_000) {
      reads.push(await read())
      if (stalled.every((s) => s.socket.destroyed)) break
    }
    t.same([...new Set(reads)], [200], `${reads.length} reads answered 200 while the slow clients were held`)

    // Most are reset by the client (RST), as the attacker did after ~15 s; a third stay stalled.
    const reset = stalled.filter((_, i) => i % 3 !== 0)
    const kept = stalled.filter((_, i) => i % 3 === 0)
    for (const s of reset) if (!s.socket.destroyed) s.socket.resetAndDestroy()
    await Promise.all(reset.map((s) => s.done))
    t.equal(await read(), 200, 'a read after the resets is answered')
    for (const service of system.services)
      t.ok(system.isRunning(service), `${service} is still running after the resets`)

    // The others stay stalled until the server's timeouts close them: wait for each close event, bounded.
    const waitStarted = Date.now()
    let bound: NodeJS.Timeout | undefined
    const allClosed = await Promise.race([
      Promise.all(kept.map((s) => s.done)).then(() => true),
      new Promise<false>((resolve) => (bound = setTimeout(() => resolve(false), CLOSE_BOUND_MS)))
    ])
    clearTimeout(bound)
    const byKind = (kind: Stalled['kind']) => kept.filter((s) => s.kind === kind)
    const closedCount = (list: Stalled[]) => list.filter((s) => s.socket.destroyed || s.closedByServer).length
    t.comment(
      `server closed ${closedCount(byKind('headers'))}/${byKind('headers').length} slow-header and ` +
        `${closedCount(byKind('body'))}/${byKind('body').length} slow-body connections within ${Date.now() - waitStarted} ms of waiting`
    )
    t.ok(allClosed, `every stalled connection was closed by the server (bound ${CLOSE_BOUND_MS} ms)`)
    // Closing silently is allowed; an answer, if any, is a 4xx (408/400/413), never a 5xx.
    const answers = kept.map((s) => Buffer.concat(s.received).toString('latin1')).filter((answer) => answer !== '')
    t.same(
      answers.filter((answer) => !/^HTTP\/1\.1 4\d\d /.test(answer)).map((a) => a.slice(0, 60)),
      [],
      `the ${answers.length} answers to stalled requests are 4xx`
    )

    t.equal(await read(), 200, 'reads are answered after all of it')
    for (const service of system.services) t.ok(system.isRunning(service), `${service} is still running at the end`)
  }
)
