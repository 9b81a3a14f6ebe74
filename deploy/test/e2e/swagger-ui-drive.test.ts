import t from 'tap'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Page } from 'playwright-core'
import { ADMIN, client, startE2E } from './helper.js'

// It starts the services as processes: a budget of its own that fits a machine twice as slow as a loaded
// one of this kind (tap's default of 120 s per file does not).
t.setTimeout(300_000)

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

/** Expands an operation, presses "Try it out", fills path parameters and executes; answers the status shown. */
async function tryOut(
  page: Page,
  method: string,
  path: string,
  params: Record<string, string> = {},
  body?: unknown
): Promise<{ status: string; body: string }> {
  const operation = page
    .locator(`.opblock-${method}`, { has: page.locator(`.opblock-summary-path[data-path="${path}"]`) })
    .first()
  if (!(await operation.locator('.opblock-body').isVisible()))
    await operation.locator('.opblock-summary').first().click()
  const tryIt = operation.locator('button.try-out__btn')
  if ((await tryIt.textContent())?.includes('Try it out')) await tryIt.click()
  for (const [name, value] of Object.entries(params))
    await operation.locator(`tr[data-param-name="${name}"] input`).fill(value)
  if (body !== undefined) await operation.locator('textarea.body-param__text').fill(JSON.stringify(body))
  const requested = page.waitForResponse(
    (r) => r.request().method() === method.toUpperCase() && new URL(r.url()).pathname.startsWith('/api/')
  )
  await operation.locator('button.execute').click()
  const status = String((await requested).status())
  // The page shows the answer once it has rendered it.
  const response = operation
    .locator('.live-responses-table .response', { has: page.locator('.response-col_status', { hasText: status }) })
    .first()
  await response.waitFor()
  return {
    status: (await response.locator('.response-col_status').textContent())!.trim(),
    body:
      (await response.locator('.response-col_description pre, .response-col_description code').first().textContent()) ??
      ''
  }
}

// Swagger UI driven as a person would: authorize with a token, open an operation, "Try it out",
// fill the parameters, execute, and read the live response the page shows. Playwright (playwright-core,
// no browser download) drives Debian's chromium.
t.test(
  'Swagger UI: authorize, try an operation out, read the answer',
  { skip: !existsSync(CHROMIUM) && `no browser at ${CHROMIUM}` },
  async (t) => {
    const system = await startE2E(t, ['identity', 'directory', 'audit', 'gateway'])
    const api = client(system.gatewayUrl!)
    const { access } = (await api('POST', '/api/auth/', { body: ADMIN })).json
    const me = JSON.parse(Buffer.from(access.split('.')[1], 'base64url').toString()).user_id as number

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ARGS
    })
    t.after(() => browser.close())
    const page = await browser.newPage()
    page.setDefaultTimeout(15_000)
    await page.goto(`${system.gatewayUrl}/docs/`)
    await page.locator('.swagger-ui .info .title', { hasText: 'Roster API' }).waitFor()

    const anonymous = await tryOut(page, 'get', '/api/users/{pk}/', { pk: String(me) })
    t.equal(anonymous.status, '401', 'without a token the API refuses, and the page shows it')
    t.match(anonymous.body, /Authentication credentials were not provided/, "in the browser's language (English)")

    await page.locator('.auth-wrapper button.authorize').click()
    const dialog = page.locator('.modal-ux')
    await dialog.locator('input').first().fill(access)
    await dialog.locator('button.authorize').first().click()
    await dialog.locator('button.btn-done, button.close-modal').first().click()

    const authorized = await tryOut(page, 'get', '/api/users/{pk}/', { pk: String(me) })
    t.equal(authorized.status, '200', 'with the token the operation answers 200')
    t.match(authorized.body, new RegExp(`"username": "${ADMIN.username}"`))

    const occupations = await tryOut(page, 'get', '/api/occupations/')
    t.equal(occupations.status, '200', "another service's operation, through the same gateway")
    t.match(occupations.body, /助产士/)
  }
)

// A person logs in from the page itself: "Try it out" of the login operation authorizes the page (no token
// copied by hand), the authorization survives a reload, and an authorized call then answers 200. Every
// request the page makes goes to the gateway (Swagger UI works offline). The screenshot is kept as
// documentation of the page (deploy/test/e2e/artifacts/docs.png).
t.test(
  'Swagger UI: log in from the page, reload, still authorized',
  { skip: !existsSync(CHROMIUM) && `no browser at ${CHROMIUM}` },
  async (t) => {
    const system = await startE2E(t, ['identity', 'directory', 'audit', 'gateway'])
    const origin = new URL(system.gatewayUrl!).origin
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
    t.after(() => browser.close())
    const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } })
    const page = await context.newPage()
    page.setDefaultTimeout(15_000)
    const elsewhere: string[] = []
    context.on('request', (request) => {
      const url = new URL(request.url())
      if (url.protocol !== 'data:' && url.protocol !== 'blob:' && url.origin !== origin) elsewhere.push(request.url())
    })
    await page.goto(`${system.gatewayUrl}/docs/`)
    await page.locator('.swagger-ui .info .title', { hasText: 'Roster API' }).waitFor()

    const login = await tryOut(page, 'post', '/api/auth/', {}, ADMIN)
    t.equal(login.status, '200', 'the login operation answers 200 on the page')
    // The page is now authorized: the lock of a secured operation shows it, and so does the dialog.
    await page.locator('.auth-wrapper button.authorize.locked').waitFor()
    t.pass('the Authorize button shows the page as authorized')

    await page.reload()
    await page.locator('.swagger-ui .info .title', { hasText: 'Roster API' }).waitFor()
    await page.locator('.auth-wrapper button.authorize.locked').waitFor()
    t.pass('still authorized after a reload')

    const me = JSON.parse(Buffer.from(JSON.parse(login.body).access.split('.')[1], 'base64url').toString())
      .user_id as number
    const authorized = await tryOut(page, 'get', '/api/users/{pk}/', { pk: String(me) })
    t.equal(authorized.status, '200', 'an authorized call after the reload answers 200')
    t.match(authorized.body, new RegExp(`"username": "${ADMIN.username}"`))

    const artifacts = join(dirname(fileURLToPath(import.meta.url)), 'artifacts')
    await mkdir(artifacts, { recursive: true })
    // The top of the page: the title, the AsyncAPI link and the Authorize button shown as logged in.
    await page.evaluate('window.scrollTo(0, 0)')
    await page.screenshot({ path: join(artifacts, 'docs.png'), fullPage: false })
    t.same(elsewhere, [], 'every request of the page went to the gateway')
  }
)
