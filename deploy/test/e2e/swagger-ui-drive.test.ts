import t from 'tap'
import { existsSync } from 'node:fs'
import { chromium, type Page } from 'playwright-core'
import { ADMIN, client, startE2E } from './helper.js'

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'

// Swagger UI driven as a person would: authorize with a token, open an operation, "Try it out",
// fill the parameters, execute, and read the live response the page shows. Playwright (playwright-core,
// no browser download) drives Debian's chromium.
t.test('Swagger UI: authorize, try an operation out, read the answer', { skip: !existsSync(CHROMIUM) && `no browser at ${CHROMIUM}` }, async (t) => {
  const system = await startE2E(t, ['identity', 'directory', 'audit', 'gateway'])
  const api = client(system.gatewayUrl!)
  const { access } = (await api('POST', '/api/auth/', { body: ADMIN })).json
  const me = JSON.parse(Buffer.from(access.split('.')[1], 'base64url').toString()).user_id as number

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.after(() => browser.close())
  const page = await browser.newPage()
  page.setDefaultTimeout(15_000)
  await page.goto(`${system.gatewayUrl}/docs/`)
  await page.locator('.swagger-ui .info .title', { hasText: 'Roster API' }).waitFor()

  /** Expands an operation, presses "Try it out", fills path parameters and executes; answers the status shown. */
  async function tryOut(page: Page, method: string, path: string, params: Record<string, string> = {}): Promise<{ status: string; body: string }> {
    const operation = page.locator(`.opblock-${method}`, { has: page.locator(`.opblock-summary-path[data-path="${path}"]`) }).first()
    if (!(await operation.locator('.opblock-body').isVisible())) await operation.locator('.opblock-summary').first().click()
    const tryIt = operation.locator('button.try-out__btn')
    if ((await tryIt.textContent())?.includes('Try it out')) await tryIt.click()
    for (const [name, value] of Object.entries(params)) await operation.locator(`tr[data-param-name="${name}"] input`).fill(value)
    const requested = page.waitForResponse((r) => r.request().method() === method.toUpperCase() && new URL(r.url()).pathname.startsWith('/api/'))
    await operation.locator('button.execute').click()
    const status = String((await requested).status())
    // The page shows the answer once it has rendered it.
    const response = operation.locator('.live-responses-table .response', { has: page.locator('.response-col_status', { hasText: status }) }).first()
    await response.waitFor()
    return {
      status: (await response.locator('.response-col_status').textContent())!.trim(),
      body: (await response.locator('.response-col_description pre, .response-col_description code').first().textContent()) ?? ''
    }
  }

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
})
