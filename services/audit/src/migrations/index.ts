import { Migration } from '@mikro-orm/migrations'

export class Migration20261123000300 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table user_log (
      id serial primary key,
      event_id uuid not null,
      user_id integer null,
      username varchar(150) not null default '',
      ip text not null default '',
      operation smallint not null check (operation in (0, 1, 2)),
      operator_id integer null,
      operate_time timestamptz not null,
      user_agent text not null default '',
      constraint user_log_event_uq unique (event_id)
    )`)
    // Lists are newest first and show logins/logouts unless failed attempts are asked for, so each of
    // the two has its own index in list order: a page is an index range read at any table size, and a
    // flood of failed attempts never slows the default list down.
    this.addSql('create index user_log_time_idx on user_log (operate_time desc, id desc) where operation < 2')
    this.addSql('create index user_log_failed_time_idx on user_log (operate_time desc, id desc) where operation = 2')
    this.addSql('create index user_log_user_time_idx on user_log (user_id, operate_time desc, id desc)')
    // `X-Total-Count` of the unfiltered lists without counting millions of rows. Statement triggers keep
    // the totals, so any writer (the consumer, a bulk import, a retention purge) keeps them right;
    // `search_path from current` pins this schema for writers whose own search path differs.
    this.addSql('create table user_log_total (operation smallint primary key, total bigint not null default 0)')
    this.addSql('insert into user_log_total (operation, total) values (0, 0), (1, 0), (2, 0)')
    this.addSql(`create function user_log_total_added() returns trigger language plpgsql set search_path from current as $$
      begin
        update user_log_total t set total = t.total + n.count
        from (select operation, count(*) as count from added group by operation) n where t.operation = n.operation;
        return null;
      end $$`)
    this.addSql(`create trigger user_log_total_added after insert on user_log
      referencing new table as added for each statement execute function user_log_total_added()`)
    this.addSql(`create function user_log_total_removed() returns trigger language plpgsql set search_path from current as $$
      begin
        update user_log_total t set total = t.total - n.count
        from (select operation, count(*) as count from removed group by operation) n where t.operation = n.operation;
        return null;
      end $$`)
    this.addSql(`create trigger user_log_total_removed after delete on user_log
      referencing old table as removed for each statement execute function user_log_total_removed()`)
    this.addSql(`create function user_log_total_emptied() returns trigger language plpgsql set search_path from current as $$
      begin
        update user_log_total set total = 0;
        return null;
      end $$`)
    this.addSql('create trigger user_log_total_emptied after truncate on user_log for each statement execute function user_log_total_emptied()')
    // Log rows are never updated (there is no endpoint to change one), so no update trigger.

    this.addSql(`create table known_user (
      id integer primary key,
      username varchar(150) not null,
      is_staff boolean not null default false,
      is_active boolean not null default true,
      deleted_at timestamptz null,
      updated_at timestamptz not null default now()
    )`)

    this.addSql(`create table black_list (
      id serial primary key,
      patient_id integer not null,
      join_time timestamptz not null default now(),
      is_delete smallint not null default 0 check (is_delete in (0, 1)),
      reason varchar(64) not null,
      creator_id integer not null
    )`)
    // A patient is actively listed at most once; removed entries stay and do not count.
    this.addSql('create unique index black_list_active_patient_uq on black_list (patient_id) where is_delete = 0')
    this.addSql('create index black_list_time_idx on black_list (join_time desc, id desc)')
    this.addSql('create index black_list_patient_idx on black_list (patient_id, join_time desc, id desc)')
  }
}

/** Identity's version of each user fact: facts may arrive out of order (the consumer runs several at once). */
export class Migration20261124000300 extends Migration {
  override async up(): Promise<void> {
    this.addSql('alter table known_user add column version integer not null default 0')
  }
}

export const migrations = [
  { name: 'Migration20261123000300', class: Migration20261123000300 },
  { name: 'Migration20261124000300', class: Migration20261124000300 }
]
