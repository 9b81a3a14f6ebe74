import { Migration } from '@mikro-orm/migrations'

export class Migration20261123000200 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table app_group (
      id serial primary key,
      name varchar(150) not null,
      version integer not null default 1
    )`)
    this.addSql('create unique index app_group_name_uq on app_group (lower(name))')
    this.addSql(`create table group_profile (
      group_id integer primary key references app_group (id) on delete cascade,
      location varchar(255) not null default '',
      contact_phone varchar(20) not null default '',
      creator_id integer null,
      modifier_id integer null,
      create_time timestamptz not null default now(),
      modify_time timestamptz not null default now()
    )`)
    this.addSql(`create table occupation (
      id serial primary key,
      name varchar(255) not null,
      version integer not null default 1
    )`)
    this.addSql('create unique index occupation_name_uq on occupation (lower(name))')
  }
}

export const migrations = [{ name: 'Migration20261123000200', class: Migration20261123000200 }]
