import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'

/**
 * The floor of the `cpu` scenario: the least a gateway, a service and PostgreSQL can spend on
 * `GET /api/users/{pk}/` on this machine, measured in the same run as Roster. Two bare processes, each a
 * few lines: a service (`node:http` and one pg connection pool) that runs identity's own statement for
 * one user by id as a named statement and answers the row as JSON, and a gateway (`node:http`) that
 * forwards the request to it over an undici `Pool`, as Roster's does, and sends the answer on. No routing,
 * token, validation, logging, metrics or error handling: what is left is the three hops and the statement.
 * Roster's figures against these say how much of its CPU per request is its own.
 */

const require = createRequire(import.meta.url)
// The undici of Roster's gateway (the same major version, forwarding with the same Pool).
const UNDICI = require.resolve('undici')
const PG = require.resolve('pg')

/** Identity's hot read (`loadUsers`): the user joined with its profile, times as epoch milliseconds. */
const STATEMENT = `select u.id, u.username, u.email, u.is_staff, u.is_active, p.user_id as "user", p.name,
  p.name_pinyin, p.gender, p.age, p.identify_id, p.phone, p.address, p.occupation_id as occupation,
  p.creator_id as creator, p.modifier_id as modifier, extract(epoch from p.create_time) * 1000 as create_time,
  extract(epoch from p.modify_time) * 1000 as modify_time
  from app_user u left join profile p on p.user_id = u.id where u.id = any($1::int[])`

const SERVICE = `
const pg = require(process.env.FLOOR_PG)
const pool = new pg.Pool({ connectionString: process.env.FLOOR_DATABASE_URL, max: 8,
  options: '-c search_path="' + process.env.FLOOR_SCHEMA + '",public' })
const text = process.env.FLOOR_STATEMENT
const server = require('node:http').createServer(async (req, res) => {
  req.resume()
  const id = Number(req.url.split('/')[3])
  const { rows } = await pool.query({ name: 'user', text, values: ['{' + id + '}'] })
  const row = rows[0]
  const body = Buffer.from(JSON.stringify(row ? { ...row, create_time: new Date(Number(row.create_time)).toISOString(),
    modify_time: new Date(Number(row.modify_time)).toISOString() } : {}))
  res.writeHead(row ? 200 : 404, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length })
  res.end(body)
})
server.keepAliveTimeout = 60000
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'))
`

const GATEWAY = `
const { Pool } = require(process.env.FLOOR_UNDICI)
const upstream = new Pool(process.env.FLOOR_UPSTREAM, { connections: 128, pipelining: 1, keepAliveTimeout: 60000 })
const server = require('node:http').createServer((req, res) => {
  req.resume()
  const chunks = []
  let status = 502
  let type
  upstream.dispatch({ method: req.method, path: req.url, headers: { 'x-forwarded-for': req.socket.remoteAddress } }, {
    onRequestStart() {},
    onResponseStart(_controller, statusCode, headers) { status = statusCode; type = headers['content-type'] },
    onResponseData(_controller, chunk) { chunks.push(chunk) },
    onResponseEnd() {
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
      res.writeHead(status, { 'content-type': type, 'content-length': body.length })
      res.end(body)
    },
    onResponseError() { res.writeHead(503); res.end() }
  })
})
server.keepAliveTimeout = 60000
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'))
`

async function startNode(code: string, env: Record<string, string>): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['-e', code], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer]
  return { port: Number(chunk.toString().trim()), child }
}

export interface Floor {
  /** `http://…` of the bare gateway and of the bare service. */
  gateway: string
  service: string
  /** Their processes, for the CPU meter (their PostgreSQL backends count as `floor-service pg`). */
  roots: { 'floor-gateway': number; 'floor-service': number }
  stop(): void
}

/** Starts the floor's service on identity's schema (`schema` of `databaseUrl`) and its gateway in front. */
export async function startFloor(databaseUrl: string, schema: string): Promise<Floor> {
  const service = await startNode(SERVICE, {
    FLOOR_PG: PG,
    FLOOR_DATABASE_URL: databaseUrl,
    FLOOR_SCHEMA: schema,
    FLOOR_STATEMENT: STATEMENT
  })
  const gateway = await startNode(GATEWAY, {
    FLOOR_UNDICI: UNDICI,
    FLOOR_UPSTREAM: `http://127.0.0.1:${service.port}`
  })
  return {
    gateway: `http://127.0.0.1:${gateway.port}`,
    service: `http://127.0.0.1:${service.port}`,
    roots: { 'floor-gateway': gateway.child.pid!, 'floor-service': service.child.pid! },
    stop() {
      gateway.child.kill()
      service.child.kill()
    }
  }
}
