import { connect, createServer } from 'node:net'

export const LOOPBACK = '127.0.0.1'

/** True when nothing listens on `host:port` (binding succeeds). */
export async function isPortFree(port: number, host = LOOPBACK): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.unref()
    server.once('error', () => resolve(false))
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)))
  })
}

/** A port the kernel hands out as free right now; another process may still take it first. */
export async function findFreePort(host = LOOPBACK): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('the kernel gave no free port'))))
    })
  })
}

export interface ChosenPort {
  port: number
  /** The preferred port was taken, so another one was picked. */
  fellBack: boolean
}

/** `preferred` when it is free, else a free one; 0 means "any free port". */
export async function choosePort(preferred: number, host = LOOPBACK): Promise<ChosenPort> {
  if (preferred !== 0 && (await isPortFree(preferred, host))) return { port: preferred, fellBack: false }
  return { port: await findFreePort(host), fellBack: preferred !== 0 }
}

/** True when a TCP connection to `host:port` is accepted. */
export async function acceptsConnections(port: number, host = LOOPBACK, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host })
    const done = (result: boolean) => {
      socket.destroy()
      resolve(result)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/** `http://host:port` that a client on this machine can reach (a wildcard bind is reached on loopback). */
export function localUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '::' || host === '' ? LOOPBACK : host
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`
}
