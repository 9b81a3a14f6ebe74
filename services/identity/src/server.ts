import { run } from '@roster/service-kit'
import { buildApp } from './app.js'
import { readConfig } from './config.js'

const config = readConfig()
await run(() => buildApp(config), {
  host: config.HOST,
  port: config.PORT,
  internalPort: config.INTERNAL_PORT,
  heapGrowingPercent: config.HEAP_GROWING_PERCENT,
  idleCollectSeconds: config.IDLE_COLLECT_SECONDS
})
