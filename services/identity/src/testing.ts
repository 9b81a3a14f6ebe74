/**
 * What other packages' tests need to run a real identity service beside them (`@roster/identity/testing`):
 * the app, its configuration and the test helpers. Left out of the built service (tsconfig.build.json).
 */
export { buildApp } from './app.js'
export { IdentityConfigSchema, readConfig, type IdentityConfig } from './config.js'
export { ADMIN, bearer, build, login, register, SEED_PROFILE, testConfig } from '../test/helper.js'
