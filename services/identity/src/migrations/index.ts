import { Migration } from '@mikro-orm/migrations'
import { identifierKey } from '../domain/identifiers.js'
import { SEARCH_KEY_LENGTH } from '../entities/index.js'

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
    this
      .addSql(`create function app_user_total_changed() returns trigger language plpgsql set search_path from current as $$
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
    this.addSql(
      'create trigger app_user_total_emptied after truncate on app_user for each statement execute function app_user_total_changed()'
    )
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
    const rows = (await this.execute('select id, username from app_user order by id')) as {
      id: number
      username: string
    }[]
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

/**
 * The user list at a million users (issue 10). Search matches each field on its own: a trigram index per
 * field for three characters and more, and for one or two (`zs`, `张三`, which have no trigram) an index
 * of every 1- and 2-character piece of each field, tagged with the field (`user_search_grams`). Filters
 * read indexes ordered by user id, so a page walks them in the list's order. The count of a list with one
 * filter is kept, like `app_user_total`, by statement triggers in `user_list_count`. Applied to an existing
 * million users it builds seven indexes: about 10 minutes on 2 loaded shared cores.
 */
export class Migration20261201000100 extends Migration {
  override async up(): Promise<void> {
    // Every 1- and 2-character piece of each field, lower case, prefixed with the field's tag (one character
    // of `tags` per field): `user_search_grams('np', '张三', 'zhangsan')` has `n张`, `n张三`, `pzh`, … A loop in
    // PL/pgSQL, 3.5 times faster than the same in SQL with generate_series (building the index over a million
    // profiles), and one call per row for the four profile fields.
    this.addSql(`create function user_search_grams(tags text, variadic fields text[]) returns text[]
      language plpgsql immutable strict parallel safe as $$
      declare
        grams text[] := '{}';
        v text;
        len integer;
      begin
        for f in 1..cardinality(fields) loop
          v := lower(coalesce(fields[f], ''));
          len := char_length(v);
          for i in 1..len loop
            grams := grams || (substr(tags, f, 1) || substr(v, i, 1));
            if i < len then
              grams := grams || (substr(tags, f, 1) || substr(v, i, 2));
            end if;
          end loop;
        end loop;
        return grams;
      end $$`)
    this.addSql(`create index app_user_search_grams on app_user using gin (user_search_grams('u', username))`)
    this.addSql(`create index profile_search_grams on profile
      using gin (user_search_grams('npit', name, name_pinyin, name_initials, phone))`)
    this.addSql(`do $$ begin
      if exists (select 1 from pg_extension where extname = 'pg_trgm') then
        drop index if exists profile_search_trgm;
        create index profile_name_trgm on profile using gin (name public.gin_trgm_ops);
        create index profile_name_pinyin_trgm on profile using gin (name_pinyin public.gin_trgm_ops);
        create index profile_name_initials_trgm on profile using gin (name_initials public.gin_trgm_ops);
        create index profile_phone_trgm on profile using gin (phone public.gin_trgm_ops);
      end if;
    end $$`)
    this.addSql('create index profile_gender_user_idx on profile (gender, user_id)')
    this.addSql('create index profile_occupation_user_idx on profile (occupation_id, user_id)')
    this.addSql('drop index profile_occupation_idx')
    this.addSql('create index app_user_active_idx on app_user (is_active, id)')

    this.addSql(`create table user_list_count (
      filter text not null, value integer not null, total bigint not null, primary key (filter, value)
    )`)
    this.addSql(`insert into user_list_count (filter, value, total)
      select 'is_active', is_active::int, count(*) from app_user group by 2
      union all select 'gender', gender, count(*) from profile group by 2
      union all select 'occupation', occupation_id, count(*) from profile where occupation_id is not null group by 2
      union all select 'group', group_id, count(*) from membership group by 2`)
    // Per table, what each row counts towards, and a function that adds what a statement inserted and takes
    // off what it deleted (an update is both; one that changes no counted column writes nothing). Rows are
    // changed in key order, so that concurrent statements lock them in the same order.
    const counted: Record<string, (rows: string) => string> = {
      app_user: (rows) => `select 'is_active' as filter, is_active::int as value from ${rows}`,
      profile: (rows) => `select 'gender' as filter, gender::int as value from ${rows}
        union all select 'occupation', occupation_id from ${rows} where occupation_id is not null`,
      membership: (rows) => `select 'group' as filter, group_id as value from ${rows}`
    }
    const filters: Record<string, string> = {
      app_user: "'is_active'",
      profile: "'gender', 'occupation'",
      membership: "'group'"
    }
    for (const [table, rows] of Object.entries(counted)) {
      const upsert = (deltas: string) => `insert into user_list_count as c (filter, value, total)
          select filter, value, sum(delta) from (${deltas}) d
          group by filter, value having sum(delta) <> 0 order by filter, value
          on conflict (filter, value) do update set total = c.total + excluded.total`
      const added = `select filter, value, 1 as delta from (${rows('added')}) a`
      const removed = `select filter, value, -1 as delta from (${rows('removed')}) r`
      this.addSql(`create function ${table}_list_count_changed() returns trigger language plpgsql
        set search_path from current as $$
        begin
          if tg_op = 'INSERT' then
            ${upsert(added)};
          elsif tg_op = 'DELETE' then
            ${upsert(removed)};
          elsif tg_op = 'UPDATE' then
            ${upsert(`${added} union all ${removed}`)};
          else
            delete from user_list_count where filter = any(array[${filters[table]}]);
          end if;
          return null;
        end $$`)
      this.addSql(`create trigger ${table}_list_count_added after insert on ${table}
        referencing new table as added for each statement execute function ${table}_list_count_changed()`)
      this.addSql(`create trigger ${table}_list_count_removed after delete on ${table}
        referencing old table as removed for each statement execute function ${table}_list_count_changed()`)
      this.addSql(`create trigger ${table}_list_count_updated after update on ${table}
        referencing old table as removed new table as added
        for each statement execute function ${table}_list_count_changed()`)
      this.addSql(`create trigger ${table}_list_count_emptied after truncate on ${table}
        for each statement execute function ${table}_list_count_changed()`)
    }
  }
}

/**
 * Search by index-only range scans (issue 10: `angwe` and `伟` read 10–20 thousand rows of `app_user` and
 * `profile` for their trigram and gram rechecks, 0.3–0.7 s at a million users). `user_search_key` holds,
 * per user, every suffix of each searched field, lower case and cut to 32 characters: a field contains
 * `s` exactly when one of its suffixes starts with `s`, so a search is the range of keys from `s` to the
 * next string after every string starting with `s`, read from the primary key alone, as many entries as
 * there are matches. Each field's suffixes are its own (no key spans two fields), so each field is matched
 * on its own. Triggers keep it: statement triggers add and remove the keys of inserted and deleted rows,
 * row triggers (only when a searched field changes) swap an old value's keys for the new one's, leaving
 * those the user's other fields still have. The trigram and gram indexes go.
 */
export class Migration20261201000500 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table user_search_key (
      key text collate "C" not null,
      user_id integer not null,
      primary key (key, user_id)
    )`)
    // Every suffix of each field, lower case, cut to `SEARCH_KEY_LENGTH` characters, once.
    this.addSql(`create function user_search_keys(variadic fields text[]) returns setof text
      language sql immutable strict parallel safe as $$
        select distinct substr(v, i, ${SEARCH_KEY_LENGTH}) collate "C"
        from unnest(fields) f, lower(f) v, generate_series(1, char_length(v)) i
      $$`)
    // The first string after every string that starts with \`prefix\` (code point order, as "C" compares
    // UTF-8): its last character raised by one (past the surrogates); a last U+10FFFF is dropped first.
    this.addSql(`create function user_search_after(prefix text) returns text
      language plpgsql immutable strict parallel safe as $$
      declare
        c integer;
      begin
        while prefix <> '' loop
          c := ascii(right(prefix, 1));
          if c < 1114111 then
            return left(prefix, -1) || chr(case when c = 55295 then 57344 else c + 1 end);
          end if;
          prefix := left(prefix, -1);
        end loop;
        return repeat(chr(1114111), ${SEARCH_KEY_LENGTH + 1});
      end $$`)
    const profileKeys = (row: string) =>
      `user_search_keys(${row}.name, ${row}.name_pinyin, ${row}.name_initials, ${row}.phone)`
    this.addSql(`create function user_search_keys_changed() returns trigger language plpgsql
      set search_path from current as $$
      begin
        if tg_table_name = 'app_user' then
          if tg_op = 'INSERT' then
            insert into user_search_key (key, user_id)
              select k, a.id from added a, user_search_keys(a.username) k order by k collate "C", 2 on conflict do nothing;
          elsif tg_op = 'DELETE' then
            delete from user_search_key s using (
              select k, r.id from removed r, user_search_keys(r.username) k
              union select k, p.user_id from removed r join profile p on p.user_id = r.id, ${profileKeys('p')} k
            ) d(key, user_id) where s.key = d.key collate "C" and s.user_id = d.user_id;
          elsif tg_op = 'TRUNCATE' then
            truncate user_search_key;
          else
            -- One row whose username changed: its old keys go, but for those its profile still has.
            delete from user_search_key s using (
              select user_search_keys(old.username)
              except select user_search_keys(new.username)
              except select ${profileKeys('p')} from profile p where p.user_id = new.id
            ) d(key) where s.key = d.key collate "C" and s.user_id = old.id;
            insert into user_search_key (key, user_id)
              select k, new.id from user_search_keys(new.username) k order by k collate "C" on conflict do nothing;
          end if;
        else
          if tg_op = 'TRUNCATE' then
            -- The usernames' keys are all that is left.
            truncate user_search_key;
            insert into user_search_key (key, user_id)
              select k, u.id from app_user u, user_search_keys(u.username) k order by k collate "C", 2;
          elsif tg_op = 'INSERT' then
            insert into user_search_key (key, user_id)
              select k, a.user_id from added a, ${profileKeys('a')} k order by k collate "C", 2 on conflict do nothing;
          elsif tg_op = 'DELETE' then
            delete from user_search_key s using (
              select k, r.user_id from removed r, ${profileKeys('r')} k
              except select k, u.id from removed r join app_user u on u.id = r.user_id, user_search_keys(u.username) k
            ) d(key, user_id) where s.key = d.key collate "C" and s.user_id = d.user_id;
          else
            -- One profile whose searched fields changed: its old keys go, but for those its username has.
            -- The user's row is locked first (writers of a user already hold it), so that a username
            -- changed at the same time is read as it is committed, not as it was.
            delete from user_search_key s using (
              select ${profileKeys('old')}
              except select ${profileKeys('new')}
              except select user_search_keys(u.username) from (
                select username from app_user where id = new.user_id for no key update
              ) u
            ) d(key) where s.key = d.key collate "C" and s.user_id = old.user_id;
            insert into user_search_key (key, user_id)
              select k, new.user_id from ${profileKeys('new')} k order by k collate "C" on conflict do nothing;
          end if;
        end if;
        return null;
      end $$`)
    for (const table of ['app_user', 'profile']) {
      this.addSql(`create trigger ${table}_search_added after insert on ${table}
        referencing new table as added for each statement execute function user_search_keys_changed()`)
      this.addSql(`create trigger ${table}_search_removed after delete on ${table}
        referencing old table as removed for each statement execute function user_search_keys_changed()`)
    }
    for (const table of ['app_user', 'profile'])
      this.addSql(`create trigger ${table}_search_emptied after truncate on ${table}
        for each statement execute function user_search_keys_changed()`)
    this.addSql(`create trigger app_user_search_renamed after update of username on app_user for each row
      when (old.username is distinct from new.username) execute function user_search_keys_changed()`)
    this.addSql(`create trigger profile_search_changed after update of name, name_pinyin, name_initials, phone
      on profile for each row
      when ((old.name, old.name_pinyin, old.name_initials, old.phone)
            is distinct from (new.name, new.name_pinyin, new.name_initials, new.phone))
      execute function user_search_keys_changed()`)
    this.addSql(`insert into user_search_key (key, user_id)
      select key, user_id from (
        select k, u.id from app_user u, user_search_keys(u.username) k
        union select k, p.user_id from profile p, ${profileKeys('p')} k
      ) keys(key, user_id) order by key collate "C", user_id`)
    for (const index of [
      'app_user_username_trgm',
      'app_user_search_grams',
      'profile_name_trgm',
      'profile_name_pinyin_trgm',
      'profile_name_initials_trgm',
      'profile_phone_trgm',
      'profile_search_grams'
    ])
      this.addSql(`drop index if exists ${index}`)
    this.addSql('drop function user_search_grams(text, text[])')
  }
}

export const migrations = [
  { name: 'Migration20261123000100', class: Migration20261123000100 },
  { name: 'Migration20261124000100', class: Migration20261124000100 },
  { name: 'Migration20261124000200', class: Migration20261124000200 },
  { name: 'Migration20261130000100', class: Migration20261130000100 },
  { name: 'Migration20261130000200', class: Migration20261130000200 },
  { name: 'Migration20261201000100', class: Migration20261201000100 },
  { name: 'Migration20261201000500', class: Migration20261201000500 }
]
