import { Type, type Static } from '@sinclair/typebox'
import { loadConfig, serviceConfigSchema } from '@roster/service-kit'

export const DirectoryConfigSchema = serviceConfigSchema({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3002 }),
  INTERNAL_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3102 }),
  DIRECTORY_SEED_OCCUPATIONS: Type.Boolean({
    default: true,
    description: 'fill the standard occupation catalogue into a directory that has never held an occupation'
  })
})
export type DirectoryConfig = Static<typeof DirectoryConfigSchema>

export function readConfig(overrides: Partial<DirectoryConfig> = {}): DirectoryConfig {
  return loadConfig(DirectoryConfigSchema, overrides)
}
