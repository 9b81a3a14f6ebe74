import { Migration } from '@mikro-orm/migrations'
import { EntitySchema } from '@mikro-orm/core'

/** Tables every service has: the outbox of facts to publish, and the consumers' bookkeeping. */
export class KitMigration20261123000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table outbox_event (
      id bigserial primary key,
      event_id uuid not null unique,
      kind text not null default 'event',
      subject text not null,
      payload jsonb not null,
      created_at timestamptz not null default now(),
      published_at timestamptz null
    )`)
    this.addSql('create index outbox_event_pending_idx on outbox_event (id) where published_at is null')
    this.addSql(`create table processed_event (
      consumer text not null,
      event_id uuid not null,
      subject text not null,
      processed_at timestamptz not null default now(),
      primary key (consumer, event_id)
    )`)
    this.addSql(`create table parked_event (
      id bigserial primary key,
      consumer text not null,
      subject text not null,
      payload text not null,
      reason text not null,
      deliveries integer not null,
      parked_at timestamptz not null default now()
    )`)
  }
}

export const kitMigrations = [{ name: 'KitMigration20261123000000', class: KitMigration20261123000000 }]

/** One entity per kit table, so each service's schema diff against its entities covers these tables too. */
export const kitEntities = [
  new EntitySchema<{
    id: string
    eventId: string
    kind: string
    subject: string
    payload: unknown
    createdAt: Date
    publishedAt: Date | null
  }>({
    name: 'KitOutboxEvent',
    tableName: 'outbox_event',
    properties: {
      id: { type: 'bigint', primary: true, autoincrement: true },
      eventId: { type: 'uuid', unique: 'outbox_event_event_id_key' },
      kind: { type: 'text', default: 'event' },
      subject: { type: 'text' },
      payload: { type: 'json' },
      createdAt: { type: 'datetime', defaultRaw: 'now()' },
      publishedAt: { type: 'datetime', nullable: true }
    },
    indexes: [
      {
        name: 'outbox_event_pending_idx',
        expression: 'create index outbox_event_pending_idx on outbox_event (id) where published_at is null'
      }
    ]
  }),
  new EntitySchema<{ consumer: string; eventId: string; subject: string; processedAt: Date }>({
    name: 'KitProcessedEvent',
    tableName: 'processed_event',
    properties: {
      consumer: { type: 'text', primary: true },
      eventId: { type: 'uuid', primary: true },
      subject: { type: 'text' },
      processedAt: { type: 'datetime', defaultRaw: 'now()' }
    }
  }),
  new EntitySchema<{
    id: string
    consumer: string
    subject: string
    payload: string
    reason: string
    deliveries: number
    parkedAt: Date
  }>({
    name: 'KitParkedEvent',
    tableName: 'parked_event',
    properties: {
      id: { type: 'bigint', primary: true, autoincrement: true },
      consumer: { type: 'text' },
      subject: { type: 'text' },
      payload: { type: 'text' },
      reason: { type: 'text' },
      deliveries: { type: 'integer' },
      parkedAt: { type: 'datetime', defaultRaw: 'now()' }
    }
  })
]
