/**
 * Loaded into every test process (`.taprc`, `node-arg`): removes Roster's configuration variables from the
 * environment, so that a shell set up as the README says (`ROSTER_ADMIN_USERNAME`, `DATABASE_URL`, `LOG_LEVEL`,
 * `PORT`, ...) cannot change what a test does, nor what the services it starts read. Tests choose their own
 * configuration; only the `TEST_*` variables (where the test database and NATS are, test log level) and the
 * test-only switches below reach them.
 */
const KEPT = new Set(['TEST_DATABASE_URL', 'TEST_NATS_URL', 'TEST_LOG_LEVEL', 'KEEP_TEST_DATA', 'CHROMIUM'])

/** Every variable a service, the gateway or the launcher reads (see the README's configuration tables). */
const CONFIGURATION = [
  /^ROSTER_/,
  /^(IDENTITY|DIRECTORY|AUDIT)_/,
  /^(DB|NATS|LOGIN|CLIENT|OUTBOX|PASSWORD|REVOCATION|CONSUMER|UPSTREAM|GATEWAY|BENCH)_/,
  /^(DATABASE_URL|LOG_LEVEL|PORT|HOST|INTERNAL_PORT|BCRYPT_COST|MIGRATE_ON_START|CORS_ORIGINS|PUBLIC_ROUTES)$/,
  /^(RATE_LIMIT_MAX|BODY_BUFFER_BUDGET_BYTES|TRUST_PROXY|TRUSTED_PROXIES|UV_THREADPOOL_SIZE|HEAP_GROWING_PERCENT|IDLE_COLLECT_SECONDS)$/
]

export function isConfiguration(name: string): boolean {
  return !KEPT.has(name) && CONFIGURATION.some((pattern) => pattern.test(name))
}

for (const name of Object.keys(process.env)) if (isConfiguration(name)) delete process.env[name]
