/**
 * What other packages' tests need to run a real audit service beside them (`@roster/audit/testing`):
 * the app, its configuration and the test helpers. Left out of the built service (tsconfig.build.json).
 */
export { buildApp } from './app.js'
export { AuditConfigSchema, readConfig, type AuditConfig } from './config.js'
export { testConfig } from '../test/helper.js'
