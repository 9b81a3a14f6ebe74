import { runMigrationCommand } from '@roster/service-kit'
import { readConfig } from './config.js'
import { entities } from './entities/index.js'
import { migrations } from './migrations/index.js'

// The migration Job's command (`node dist/migrate.js` in the image, `pnpm migrate` here): applies the
// audit schema's pending migrations once and exits; the service itself then starts with MIGRATE_ON_START=false.
await runMigrationCommand({ name: 'audit', config: readConfig(), entities, migrations })
