/**
 * What other packages' tests need to run a real directory service beside them (`@roster/directory/testing`):
 * the app, its configuration and the test helpers. Left out of the built service (tsconfig.build.json).
 */
export { buildApp } from './app.js'
export { DirectoryConfigSchema, readConfig, type DirectoryConfig } from './config.js'
export { testConfig } from '../test/helper.js'
