import { Migration } from '@mikro-orm/migrations'
import { identifierKey } from '../domain/identifiers.js'

export class Migration20261123000100 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table app_user (
      id serial primary key,
      username varchar(150) not null,
      email varchar(254) not null default '',
      password text not null,
      is_staff boolean not null default false,
      is_active boolean not null default true,
      date_joined timestamptz not null default now(),
      last_login timestamptz null
    )`)
    this.addSql('create unique index app_user_username_uq on app_user (lower(username))')
    this.addSql(`create unique index app_user_email_uq on app_user (lower(email)) where email <> ''`)
    this.addSql(`create table profile (
      user_id integer primary key references app_user (id) on delete cascade,
      name varchar(64) not null,
      name_pinyin varchar(512) not null,
      name_initials varchar(128) not null,
      gender smallint not null,
      age smallint not null,
      identify_id varchar(18) not null,
      phone varchar(11) not null default '',
      address varchar(256) not null default '',
      occupation_id integer null,
      creator_id integer null,
      modifier_id integer null,
      create_time timestamptz not null default now(),
      modify_time timestamptz not null default now()
    )`)
    this.addSql('create index profile_occupation_idx on profile (occupation_id)')
    this.addSql(`create table session (
      id uuid primary key,
      user_id integer not null references app_user (id) on delete cascade,
      refresh_jti uuid not null,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      revoked_at timestamptz null,
      ip text not null default '',
      user_agent text not null default ''
    )`)
    this.addSql('create index session_user_idx on session (user_id) where revoked_at is null')
    this.addSql(`create table login_throttle (
      key text primary key,
      window_start timestamptz not null,
      failures integer not null
    )`)
    this.addSql(`create table occupation_replica (
      id integer primary key, name text not null, version integer not null, deleted boolean not null default false
    )`)
    this.addSql(`create table group_replica (
      id integer primary key, name text not null, location text null, contact_phone text null,
      version integer not null, deleted boolean not null default false
    )`)
    this.addSql(`create table membership (
      group_id integer not null,
      user_id integer not null references app_user (id) on delete cascade,
      created_at timestamptz not null default now(),
      primary key (group_id, user_id)
    )`)
    this.addSql('create index membership_user_idx on membership (user_id)')
    // Substring search over a million users needs trigram indexes; skipped where pg_trgm is unavailable.
    this.addSql(`do $$ begin
      if exists (select 1 from pg_extension where extname = 'pg_trgm') then
        create index app_user_username_trgm on app_user using gin (username public.gin_trgm_ops);
        create index profile_search_trgm on profile using gin ((name || '|' || name_pinyin || '|' || name_initials || '|' || phone) public.gin_trgm_ops);
      end if;
    end $$`)
  }
}

/** The number of users, kept by statement triggers, for the unfiltered list's `X-Total-Count`. */
export class Migration20261124000100 extends Migration {
  override async up(): Promise<void> {
    this.addSql('create table app_user_total (total bigint not null)')
    this.addSql('insert into app_user_total (total) select count(*) from app_user')
    this.addSql(`create function app_user_total_changed() returns trigger language plpgsql set search_path from current as $$
      begin
        if tg_op = 'INSERT' then
          update app_user_total set total = total + (select count(*) from added);
        elsif tg_op = 'DELETE' then
          update app_user_total set total = total - (select count(*) from removed);
        else
          update app_user_total set total = 0;
        end if;
        return null;
      end $$`)
    this.addSql(`create trigger app_user_total_added after insert on app_user
      referencing new table as added for each statement execute function app_user_total_changed()`)
    this.addSql(`create trigger app_user_total_removed after delete on app_user
      referencing old table as removed for each statement execute function app_user_total_changed()`)
    this.addSql('create trigger app_user_total_emptied after truncate on app_user for each statement execute function app_user_total_changed()')
  }
}

/** A version per user, raised with every change, so replicas downstream can order `identity.user.*` facts. */
export class Migration20261124000200 extends Migration {
  override async up(): Promise<void> {
    this.addSql('alter table app_user add column version integer not null default 1')
  }
}

/**
 * Usernames unique after NFKC and full case folding (`ａｄｍｉｎ`, `ADMIN` and `admin` are one name):
 * a key column computed by the service (PostgreSQL's `lower` folds only what its locale knows), filled
 * here for existing rows, with a unique index replacing the one on `lower(username)`. Accounts that the
 * old rule let in beside an earlier one with the same key keep their row and username; their key gets
 * `#<id>` (a character no username has), so the index can be built and nothing is lost; such an account
 * logs in as `<username>#<id>`.
 */
export class Migration20261130000100 extends Migration {
  override async up(): Promise<void> {
    await this.execute('alter table app_user add column username_key text')
    const rows = (await this.execute('select id, username from app_user order by id')) as { id: number; username: string }[]
    const seen = new Set<string>()
    const keyed: { id: number; key: string }[] = []
    for (const row of rows) {
      let key = identifierKey(row.username)
      if (seen.has(key)) key = `${key}#${row.id}`
      seen.add(key)
      keyed.push({ id: row.id, key })
    }
    for (let i = 0; i < keyed.length; i += 10_000) {
      await this.execute(
        'update app_user u set username_key = k.key from json_to_recordset(?::json) as k(id int, key text) where u.id = k.id',
        [JSON.stringify(keyed.slice(i, i + 10_000))]
      )
    }
    await this.execute('alter table app_user alter column username_key set not null')
    await this.execute('create unique index app_user_username_key_uq on app_user (username_key)')
    await this.execute('drop index if exists app_user_username_uq')
  }
}

/** Login attempts being checked count against the throttle (see `LoginThrottle`). */
export class Migration20261130000200 extends Migration {
  override async up(): Promise<void> {
    this.addSql('alter table login_throttle add column pending integer not null default 0')
  }
}

export const migrations = [
  { name: 'Migration20261123000100', class: Migration20261123000100 },
  { name: 'Migration20261124000100', class: Migration20261124000100 },
  { name: 'Migration20261124000200', class: Migration20261124000200 },
  { name: 'Migration20261130000100', class: Migration20261130000100 },
  { name: 'Migration20261130000200', class: Migration20261130000200 }
]
