import { Migration } from '@mikro-orm/migrations'

/** The first key of the advisory lock under which log partitions are made and dropped (the second: the schema). */
const PARTITION_LOCK = 0x61756474

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
    this
      .addSql(`create function user_log_total_added() returns trigger language plpgsql set search_path from current as $$
      begin
        update user_log_total t set total = t.total + n.count
        from (select operation, count(*) as count from added group by operation) n where t.operation = n.operation;
        return null;
      end $$`)
    this.addSql(`create trigger user_log_total_added after insert on user_log
      referencing new table as added for each statement execute function user_log_total_added()`)
    this
      .addSql(`create function user_log_total_removed() returns trigger language plpgsql set search_path from current as $$
      begin
        update user_log_total t set total = t.total - n.count
        from (select operation, count(*) as count from removed group by operation) n where t.operation = n.operation;
        return null;
      end $$`)
    this.addSql(`create trigger user_log_total_removed after delete on user_log
      referencing old table as removed for each statement execute function user_log_total_removed()`)
    this
      .addSql(`create function user_log_total_emptied() returns trigger language plpgsql set search_path from current as $$
      begin
        update user_log_total set total = 0;
        return null;
      end $$`)
    this.addSql(
      'create trigger user_log_total_emptied after truncate on user_log for each statement execute function user_log_total_emptied()'
    )
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

/**
 * The log partitioned by month (native range partitioning on `operate_time`, months in UTC), keeping its rows:
 * a page or a filter reads the partitions it needs, and retention drops whole months (`AUDIT_RETENTION_DAYS`)
 * instead of deleting rows. Partitions are `user_log_pYYYYMM`; `user_log_default` takes a row whose month has
 * none yet, and `user_log_make_partitions` (run by the service at start-up and every hour) moves such rows into
 * their month's partition. Keys must hold the partition key: the primary key is `(id, operate_time)` (ids stay
 * unique through the sequence) and `event_id` is unique with the event's time, which a redelivery repeats.
 * `X-Total-Count` comes from totals per operation and UTC day (kept by statement triggers), so a time filter
 * counts at most its two edge days' rows.
 */
export class Migration20261201000300 extends Migration {
  override async up(): Promise<void> {
    this.addSql('drop trigger user_log_total_added on user_log')
    this.addSql('drop trigger user_log_total_removed on user_log')
    this.addSql('drop trigger user_log_total_emptied on user_log')
    this.addSql('drop function user_log_total_added(), user_log_total_removed(), user_log_total_emptied()')
    this.addSql('drop table user_log_total')
    this.addSql('alter table user_log rename to user_log_unpartitioned')
    this.addSql('alter table user_log_unpartitioned drop constraint user_log_event_uq, drop constraint user_log_pkey')
    this.addSql('drop index user_log_time_idx, user_log_failed_time_idx, user_log_user_time_idx')
    this.addSql(`create table user_log (
      id integer not null default nextval('user_log_id_seq'),
      event_id uuid not null,
      user_id integer null,
      username varchar(150) not null default '',
      ip text not null default '',
      operation smallint not null,
      operator_id integer null,
      operate_time timestamptz not null,
      user_agent text not null default '',
      constraint user_log_pkey primary key (id, operate_time),
      constraint user_log_operation_check check (operation in (0, 1, 2)),
      constraint user_log_event_uq unique (event_id, operate_time)
    ) partition by range (operate_time)`)
    this.addSql('alter sequence user_log_id_seq owned by user_log.id')
    this.addSql('create index user_log_time_idx on user_log (operate_time desc, id desc) where operation < 2')
    this.addSql('create index user_log_failed_time_idx on user_log (operate_time desc, id desc) where operation = 2')
    this.addSql('create index user_log_user_time_idx on user_log (user_id, operate_time desc, id desc)')
    this.addSql('create table user_log_default partition of user_log default')

    // The month's partition of `at` (made when missing, with the rows of that month that the default
    // partition holds), under a transaction-scoped advisory lock of this schema: replicas starting together
    // wait for each other and the second finds the partition made. Answers the partition's name.
    this.addSql(`create function user_log_partition(at timestamptz) returns text language plpgsql
      set search_path from current as $$
      declare
        lower timestamptz := date_trunc('month', at, 'UTC');
        upper timestamptz := lower + interval '1 month';
        name text := 'user_log_p' || to_char(lower at time zone 'UTC', 'YYYYMM');
      begin
        perform pg_advisory_xact_lock(${PARTITION_LOCK}, hashtext(current_schema()));
        if to_regclass(name) is not null then
          return name;
        end if;
        execute format('create table %I (like user_log including defaults including constraints)', name);
        execute format('insert into %I select * from user_log_default where operate_time >= %L and operate_time < %L',
          name, lower, upper);
        execute format('delete from user_log_default where operate_time >= %L and operate_time < %L', lower, upper);
        execute format('alter table user_log attach partition %I for values from (%L) to (%L)', name, lower, upper);
        return name;
      end $$`)
    // The partitions of this month and the `ahead` next ones, and of every month the default partition has rows of.
    this.addSql(`create function user_log_make_partitions(ahead integer) returns setof text language sql
      set search_path from current as $$
      select user_log_partition(month) from (
        select date_trunc('month', now(), 'UTC') + make_interval(months => n) as month from generate_series(0, ahead) n
        union
        select distinct date_trunc('month', operate_time, 'UTC') from user_log_default
      ) months order by month
    $$`)
    // Retention: drops every month's partition that ends at or before `cutoff`, and its days' totals.
    this.addSql(`create function user_log_drop_partitions(cutoff timestamptz) returns setof text language plpgsql
      set search_path from current as $$
      declare
        part record;
      begin
        perform pg_advisory_xact_lock(${PARTITION_LOCK}, hashtext(current_schema()));
        for part in
          select c.relname as name, to_date(substr(c.relname, 11), 'YYYYMM') as first_day
            from pg_inherits i join pg_class c on c.oid = i.inhrelid
           where i.inhparent = 'user_log'::regclass and c.relname ~ '^user_log_p[0-9]{6}$'
           order by c.relname
        loop
          if (part.first_day + interval '1 month')::timestamp at time zone 'UTC' <= cutoff then
            delete from user_log_total where day >= part.first_day and day < part.first_day + interval '1 month';
            execute format('alter table user_log detach partition %I', part.name);
            execute format('drop table %I', part.name);
            return next part.name;
          end if;
        end loop;
      end $$`)

    this.addSql(`select user_log_partition(month) from (
      select distinct date_trunc('month', operate_time, 'UTC') as month from user_log_unpartitioned
      union
      select date_trunc('month', now(), 'UTC') + make_interval(months => n) from generate_series(0, 2) n
    ) months order by month`)
    this.addSql(`insert into user_log (id, event_id, user_id, username, ip, operation, operator_id, operate_time,
        user_agent)
      select id, event_id, user_id, username, ip, operation, operator_id, operate_time, user_agent
      from user_log_unpartitioned`)
    this.addSql('drop table user_log_unpartitioned')

    this.addSql(`create table user_log_total (
      operation smallint not null,
      day date not null,
      total bigint not null default 0,
      constraint user_log_total_pkey primary key (operation, day)
    )`)
    this.addSql(`insert into user_log_total (operation, day, total)
      select operation, (operate_time at time zone 'UTC')::date, count(*) from user_log group by 1, 2`)
    // In key order, so that two statements adding to the same days cannot deadlock.
    this.addSql(`create function user_log_total_added() returns trigger language plpgsql
      set search_path from current as $$
      begin
        insert into user_log_total (operation, day, total)
        select operation, (operate_time at time zone 'UTC')::date, count(*) from added group by 1, 2 order by 1, 2
        on conflict (operation, day) do update set total = user_log_total.total + excluded.total;
        return null;
      end $$`)
    this.addSql(`create trigger user_log_total_added after insert on user_log
      referencing new table as added for each statement execute function user_log_total_added()`)
    this.addSql(`create function user_log_total_removed() returns trigger language plpgsql
      set search_path from current as $$
      begin
        update user_log_total t set total = t.total - n.count
        from (select operation, (operate_time at time zone 'UTC')::date as day, count(*) as count
              from removed group by 1, 2) n
        where t.operation = n.operation and t.day = n.day;
        return null;
      end $$`)
    this.addSql(`create trigger user_log_total_removed after delete on user_log
      referencing old table as removed for each statement execute function user_log_total_removed()`)
    this.addSql(`create function user_log_total_emptied() returns trigger language plpgsql
      set search_path from current as $$
      begin
        delete from user_log_total;
        return null;
      end $$`)
    this.addSql(`create trigger user_log_total_emptied after truncate on user_log
      for each statement execute function user_log_total_emptied()`)
  }
}

/**
 * `user_log_make_partitions` takes the partition lock before it reads the default partition. It read first and
 * locked per month (inside `user_log_partition`): two makers at once (replicas starting together) each held the
 * default partition's share lock from the read, one then waited for the other's advisory lock and the other
 * for an exclusive lock on the table to attach a partition: a deadlock, one of them failing.
 */
export class Migration20261201000400 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create or replace function user_log_make_partitions(ahead integer) returns setof text
      language plpgsql set search_path from current as $$
      begin
        perform pg_advisory_xact_lock(${PARTITION_LOCK}, hashtext(current_schema()));
        return query select user_log_partition(month) from (
          select date_trunc('month', now(), 'UTC') + make_interval(months => n) as month from generate_series(0, ahead) n
          union
          select distinct date_trunc('month', operate_time, 'UTC') from user_log_default
        ) months order by month;
      end $$`)
  }
}

/**
 * Totals per operation and UTC hour beside the per-day ones: a time filter sums whole days, then the whole hours
 * of its edge days, and counts only the rows of its two edge hours (at most two hours of the log, where two edge
 * days were up to two days of it; a `since` in the morning counted the rest of that day, some 40 000 rows at 10
 * million over 180 days). Triggers of their own keep them, beside the per-day ones: an insert, a delete or a
 * truncate of `user_log`, and the per-day totals a retention drops with their month (their hours go with them).
 * The hour triggers sort before the day triggers, so every statement takes the hours' row locks, then the
 * days', in key order within each: two statements cannot deadlock. The table is locked while the hours are
 * summed, so no insert or purge of a replica still running falls between the sum and the triggers.
 */
export class Migration20261202000300 extends Migration {
  override async up(): Promise<void> {
    this.addSql('lock table user_log in share row exclusive mode')
    this.addSql(`create table user_log_hour_total (
      operation smallint not null,
      hour timestamptz not null,
      total bigint not null default 0,
      constraint user_log_hour_total_pkey primary key (operation, hour)
    )`)
    this.addSql(`insert into user_log_hour_total (operation, hour, total)
      select operation, date_trunc('hour', operate_time, 'UTC'), count(*) from user_log group by 1, 2`)
    this.addSql(`create function user_log_hour_total_added() returns trigger language plpgsql
      set search_path from current as $$
      begin
        insert into user_log_hour_total (operation, hour, total)
        select operation, date_trunc('hour', operate_time, 'UTC'), count(*) from added group by 1, 2 order by 1, 2
        on conflict (operation, hour) do update set total = user_log_hour_total.total + excluded.total;
        return null;
      end $$`)
    this.addSql(`create trigger user_log_hour_total_added after insert on user_log
      referencing new table as added for each statement execute function user_log_hour_total_added()`)
    this.addSql(`create function user_log_hour_total_removed() returns trigger language plpgsql
      set search_path from current as $$
      begin
        update user_log_hour_total t set total = t.total - n.count
        from (select operation, date_trunc('hour', operate_time, 'UTC') as hour, count(*) as count
              from removed group by 1, 2) n
        where t.operation = n.operation and t.hour = n.hour;
        return null;
      end $$`)
    this.addSql(`create trigger user_log_hour_total_removed after delete on user_log
      referencing old table as removed for each statement execute function user_log_hour_total_removed()`)
    this.addSql(`create function user_log_hour_total_emptied() returns trigger language plpgsql
      set search_path from current as $$
      begin
        delete from user_log_hour_total;
        return null;
      end $$`)
    this.addSql(`create trigger user_log_hour_total_emptied after truncate on user_log
      for each statement execute function user_log_hour_total_emptied()`)
    // A day's total is deleted only with its month's partition (retention): that day's hours go too.
    this.addSql(`create function user_log_day_total_dropped() returns trigger language plpgsql
      set search_path from current as $$
      begin
        delete from user_log_hour_total h
        using (select distinct operation, day from dropped) d
        where h.operation = d.operation
          and h.hour >= d.day::timestamp at time zone 'UTC' and h.hour < (d.day + 1)::timestamp at time zone 'UTC';
        return null;
      end $$`)
    this.addSql(`create trigger user_log_day_total_dropped after delete on user_log_total
      referencing old table as dropped for each statement execute function user_log_day_total_dropped()`)
  }
}

export const migrations = [
  { name: 'Migration20261123000300', class: Migration20261123000300 },
  { name: 'Migration20261124000300', class: Migration20261124000300 },
  { name: 'Migration20261201000300', class: Migration20261201000300 },
  { name: 'Migration20261201000400', class: Migration20261201000400 },
  { name: 'Migration20261202000300', class: Migration20261202000300 }
]
