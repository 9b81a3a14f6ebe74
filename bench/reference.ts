import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

/**
 * The yardstick of the `cpu` scenario: a bare `node:http` server, in a process of its own, answering
 * every request with the same JSON body (as large as a user record) and the headers a JSON API sends.
 */
const SERVER = `
const body = Buffer.from(process.env.REFERENCE_BODY)
const server = require('node:http').createServer((req, res) => {
  req.resume()
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length })
  res.end(body)
})
server.keepAliveTimeout = 60000
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'))
`

export async function startReference(body: string): Promise<{ url: string; pid: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['-e', SERVER], {
    env: { REFERENCE_BODY: body },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer]
  return { url: `http://127.0.0.1:${chunk.toString().trim()}/`, pid: child.pid!, child }
}
