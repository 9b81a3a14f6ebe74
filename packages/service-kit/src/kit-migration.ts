import { Migration } from '@mikro-orm/migrations'

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
