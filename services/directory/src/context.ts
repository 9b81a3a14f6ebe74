import type { DirectoryConfig } from './config.js'

/** What the directory's routes share; decorated onto the app as `directory`. */
export interface DirectoryContext {
  config: DirectoryConfig
}

declare module 'fastify' {
  interface FastifyInstance {
    directory: DirectoryContext
  }
}
