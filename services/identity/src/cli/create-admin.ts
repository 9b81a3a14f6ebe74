import { parseArgs } from 'node:util'
import { buildApp } from '../app.js'
import { readConfig } from '../config.js'
import { ensureAdmin } from '../admin.js'

/**
 * Creates an admin, or makes an existing user an active admin with the given password:
 *   pnpm create-admin --username alice --password 'a-long-secret'
 * The password may come from ROSTER_ADMIN_PASSWORD instead of the command line.
 */
async function main() {
  const { values } = parseArgs({
    options: { username: { type: 'string' }, password: { type: 'string' } },
    allowPositionals: false
  })
  const username = values.username ?? process.env.ROSTER_ADMIN_USERNAME
  const password = values.password ?? process.env.ROSTER_ADMIN_PASSWORD
  if (!username || !password) {
    console.error(
      'usage: pnpm create-admin --username NAME --password SECRET (or ROSTER_ADMIN_USERNAME / ROSTER_ADMIN_PASSWORD)'
    )
    process.exitCode = 2
    return
  }
  const config = readConfig({ ROSTER_ADMIN_USERNAME: '', ROSTER_ADMIN_PASSWORD: '', LOG_LEVEL: 'warn' })
  const app = await buildApp(config)
  try {
    await app.ready()
    const result = await ensureAdmin(app, app.orm.em.fork(), app.identity.passwords, username, password, true)
    await app.outbox.relayOnce()
    console.log(`${result.created ? 'created' : 'updated'} admin "${username}" (id ${result.id})`)
  } finally {
    await app.close()
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error)
  process.exitCode = 1
})
