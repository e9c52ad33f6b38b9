/**
 * Change capture: every insert, update and delete of a table is published, whoever makes it. A Postgres trigger
 * (installed per table by {@link migrations}) records each changed row in the changes table inside the writing
 * transaction — for ORM writes, mass updates and deletes, `COPY` imports, raw SQL and `TRUNCATE` alike — so a
 * change is recorded if and only if its transaction commits.
 *
 * A capture then moves the recorded changes into the outbox: in one transaction it reads a batch of changes in
 * order, publishes their payloads through the core `Producer` with the outbox backend, and deletes them. So every
 * committed change reaches the outbox exactly once, and `OutboxRelay` ships it to Kafka (at least once), in order per
 * key. `drain` run at the end of one's own transaction publishes that transaction's changes in it; `run` does it in
 * the background for everything else.
 *
 * An update is recorded only when a watched column changed (by default every column but `updated_at`); a delete
 * publishes the deletion payload: a tombstone of the row's key, or `generateDeletionPayload(row)`.
 *
 * @since 0.1.0
 */
import { type Producer, ProducerBackend, Tombstone } from "@deimos/core"
import { sql } from "drizzle-orm"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Database from "./Database.js"
import type { DatabaseError } from "./DatabaseError.js"
import type * as Migrations from "./Migrations.js"
import { channelName, createSchema, type Migration, migrationName, quote, tableName } from "./Migrations.js"
import * as Outbox from "./Outbox.js"
import * as RecordProducer from "./RecordProducer.js"

/**
 * Where the changes table lives (`deimos_changes`, with the prefix, in the schema).
 *
 * @since 0.1.0
 */
export type Naming = Migrations.Naming

/** The changes table and the channel its triggers notify, quoted for raw SQL. */
export const namesOf = (naming: Naming = {}) => {
  return {
    changes: tableName(naming, "deimos_changes"),
    channel: channelName(naming, "deimos_changes")
  }
}

/**
 * What to capture of one table.
 *
 * @since 0.1.0
 */
export interface TableOptions extends Naming {
  /** The captured table, schema-qualified if wanted (`"shop.orders"`). */
  readonly table: string
  /** The name its changes are recorded under. @default the table */
  readonly source?: string | undefined
  /** The columns whose change makes an update worth publishing. @default every column not in `ignored` */
  readonly watched?: ReadonlyArray<string> | undefined
  /** Columns whose change alone is not published (when `watched` is not given). @default ["updated_at"] */
  readonly ignored?: ReadonlyArray<string> | undefined
}

const sourceOf = (options: { readonly table: string; readonly source?: string | undefined }) =>
  options.source ?? options.table

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`

/**
 * The migration of the changes table (shared by every captured table; `migrations` includes it).
 *
 * @since 0.1.0
 */
export const tableMigration = (naming: Naming = {}): Migration => {
  const names = namesOf(naming)
  const prefix = naming.prefix ?? ""
  return {
    name: migrationName(naming, "change_capture_1"),
    statements: [
      ...createSchema(naming),
      `create table if not exists ${names.changes} (
        id bigserial primary key,
        source text not null,
        op text not null check (op in ('insert', 'update', 'delete')),
        row jsonb not null,
        error text,
        created_at timestamptz not null default now()
      )`,
      `create index if not exists ${quote(`${prefix}deimos_changes_source_idx`)} on ${names.changes} (source, id)
        where error is null`
    ]
  }
}

/**
 * The migrations that capture a table: the changes table, then the table's trigger function and triggers (row
 * triggers for insert, update and delete; a statement trigger that records a delete of every row before a
 * `TRUNCATE`). Generated per table; run them with `Migrations.run`.
 *
 * @since 0.1.0
 */
export const migrations = (options: TableOptions): ReadonlyArray<Migration> => {
  const names = namesOf(options)
  const source = sourceOf(options)
  const prefix = options.prefix ?? ""
  const fn = (suffix: string) => {
    const name = `${prefix}deimos_capture_${source.replace(/[^A-Za-z0-9_]/g, "_")}${suffix}`
    return options.schema === undefined ? quote(name) : `${quote(options.schema)}.${quote(name)}`
  }
  const table = quote(options.table)
  const unchanged = options.watched !== undefined
    ? `(${options.watched.map((c) => `old.${quote(c)}`).join(", ")}) is not distinct from (${
      options.watched.map((c) => `new.${quote(c)}`).join(", ")
    })`
    : `(to_jsonb(old) - ${literal(`{${(options.ignored ?? ["updated_at"]).join(",")}}`)}::text[]) =
       (to_jsonb(new) - ${literal(`{${(options.ignored ?? ["updated_at"]).join(",")}}`)}::text[])`
  return [tableMigration(options), {
    name: `${options.schema ?? "public"}.${prefix}change_capture_${source}_1`,
    statements: [
      `create or replace function ${fn("")}() returns trigger language plpgsql as $deimos$
      begin
        if tg_op = 'UPDATE' then
          if ${unchanged} then return null; end if;
        end if;
        insert into ${names.changes} (source, op, row) values (${literal(source)}, lower(tg_op),
          to_jsonb(case when tg_op = 'DELETE' then old else new end));
        perform pg_notify(${literal(names.channel)}, '');
        return null;
      end
      $deimos$`,
      `create or replace function ${fn("_truncate")}() returns trigger language plpgsql as $deimos$
      begin
        insert into ${names.changes} (source, op, row) select ${literal(source)}, 'delete', to_jsonb(t) from ${table} t;
        perform pg_notify(${literal(names.channel)}, '');
        return null;
      end
      $deimos$`,
      `drop trigger if exists deimos_capture on ${table}`,
      `create trigger deimos_capture after insert or update or delete on ${table}
        for each row execute function ${fn("")}()`,
      `drop trigger if exists deimos_capture_truncate on ${table}`,
      `create trigger deimos_capture_truncate before truncate on ${table}
        for each statement execute function ${fn("_truncate")}()`
    ]
  }]
}

/**
 * @since 0.1.0
 */
export interface Options<A, K> extends Naming {
  /** The record producer of the captured table (its producer, payloads and primary key). */
  readonly records: RecordProducer.RecordProducer<A, K>
  /** The name the table's changes are recorded under (the migration's `source`). @default the table's name */
  readonly source?: string | undefined
  /** The payload of a deleted row. @default a tombstone of its key (the key field, else the primary key) */
  readonly generateDeletionPayload?: ((row: RecordProducer.Row) => A | Tombstone.Tombstone<K>) | undefined
  /** Where the outbox is. @default the search path's tables, no prefix */
  readonly outbox?: Outbox.Naming | undefined
  /** Changes per transaction. @default 500 */
  readonly batchSize?: number | undefined
  /** How often `run` looks when no notification came. @default 1 second */
  readonly pollInterval?: Duration.DurationInput | undefined
}

/**
 * `change_capture.published{source}`: changes moved into the outbox.
 *
 * @since 0.1.0
 */
export const published = Metric.counter("change_capture.published", {
  description: "Captured changes published into the outbox"
})

/**
 * `change_capture.invalid{source}`: changes whose payload the schema refuses, kept in the changes table with the
 * error.
 *
 * @since 0.1.0
 */
export const invalid = Metric.counter("change_capture.invalid", {
  description: "Captured changes whose payload the schema refuses"
})

/**
 * What a capture needs in context: the database and the producer's schema backend and settings (the outbox backend
 * is its own).
 *
 * @since 0.1.0
 */
export type Requirements = Exclude<RecordProducer.Requirements, ProducerBackend.ProducerBackend>

/**
 * @since 0.1.0
 */
export interface ChangeCapture {
  /**
   * Publishes the recorded changes into the outbox, batch by batch, each in a transaction (the ambient one when
   * open: its own changes go out with it), until none is left; answers how many were published. While another
   * capture of the same source drains, it answers 0 at once (one drainer at a time keeps the order per key).
   */
  readonly drain: Effect.Effect<number, DatabaseError | Producer.Producer.Error, Requirements>
  /**
   * Drains at every notification of the triggers and every `pollInterval`, until interrupted. A failed drain is
   * logged and tried again (with a growing delay, at most 30 seconds): the changes stay recorded meanwhile.
   */
  readonly run: Effect.Effect<never, DatabaseError, Requirements>
}

/**
 * A capture of one table's recorded changes.
 *
 * @since 0.1.0
 */
export const make = <A, K>(options: Options<A, K>): ChangeCapture => {
  const { records } = options
  const names = namesOf(options)
  const source = options.source ?? records.tableName
  const batchSize = options.batchSize ?? 500
  const keyField = "field" in records.producer.keyConfig ? String(records.producer.keyConfig.field) : undefined
  const deletionOf = (raw: RecordProducer.Row): A | Tombstone.Tombstone<K> => {
    const row = records.normalize(raw)
    if (options.generateDeletionPayload !== undefined) return options.generateDeletionPayload(row)
    const key = keyField !== undefined && keyField in row ? row[keyField] : row[records.primaryKey.property]
    return Tombstone.make(key as K)
  }
  const outbox = Effect.provideServiceEffect(ProducerBackend.ProducerBackend, Outbox.make(options.outbox))
  const lockKey = sql`pg_try_advisory_xact_lock(${0x64636463}, hashtext(${`${names.changes}/${source}`}))`

  /** One batch in one transaction: how many changes it published (-1: another capture holds the source). */
  const batch = Database.transaction(Effect.gen(function*() {
    const locked = yield* Database.execute(sql`select ${lockKey} as locked`)
    if (locked[0].locked !== true) return -1
    const rows = yield* Database.execute(sql`select id, op, row from ${sql.raw(names.changes)}
      where source = ${source} and error is null order by id limit ${batchSize}`)
    if (rows.length === 0) return 0
    const refused: Array<{ readonly id: unknown; readonly message: string }> = []
    const done: Array<unknown> = []
    const keyOf = (row: unknown) => String(records.normalize(row as RecordProducer.Row)[records.primaryKey.property])
    // consecutive deletes, and consecutive inserts and updates, go in one publishList each (the order is kept); a
    // payload the schema refuses is set aside with its error
    let i = 0
    while (i < rows.length) {
      const deletes = rows[i].op === "delete"
      let j = i
      while (j < rows.length && (rows[j].op === "delete") === deletes) j++
      const group = rows.slice(i, j)
      i = j
      if (deletes) {
        yield* outbox(records.producer.publishList(group.map((r) => deletionOf(r.row as RecordProducer.Row))))
        for (const r of group) done.push(r.id)
        continue
      }
      const failed = yield* outbox(
        records.sendEventsSkipping(group.map((r) => r.row as RecordProducer.Row), RecordProducer.isSchemaError)
      )
      const bad = new Map(failed.map((f) => [keyOf(f.row), f.error.message]))
      for (const r of group) {
        const message = bad.get(keyOf(r.row))
        if (message === undefined) done.push(r.id)
        else refused.push({ id: r.id, message })
      }
    }
    for (const r of refused) {
      yield* Database.execute(sql`update ${sql.raw(names.changes)} set error = ${r.message} where id = ${r.id}`)
    }
    if (refused.length > 0) {
      yield* Metric.incrementBy(Metric.tagged(invalid, "source", source), refused.length)
      yield* Effect.logError("Captured changes refused by the schema are kept in the changes table").pipe(
        Effect.annotateLogs({ source, ids: refused.map((r) => String(r.id)), errors: refused.map((r) => r.message) })
      )
    }
    if (done.length > 0) {
      yield* Database.execute(
        sql`delete from ${sql.raw(names.changes)} where id in (${sql.join(done.map((id) => sql`${id}`), sql`, `)})`
      )
      yield* Metric.incrementBy(Metric.tagged(published, "source", source), done.length)
    }
    return rows.length
  }))

  const drain: ChangeCapture["drain"] = Effect.gen(function*() {
    let total = 0
    while (true) {
      const n = yield* batch
      if (n <= 0) return total
      total += n
      if (n < batchSize) return total
    }
  })

  const interval = options.pollInterval ?? Duration.seconds(1)
  const run: ChangeCapture["run"] = Effect.gen(function*() {
    const notified = yield* Effect.flatMap(Database.Database, (database) => database.listen(names.channel))
    const retried = drain.pipe(
      Effect.tapError((error) =>
        Effect.logWarning("Publishing captured changes failed; trying again").pipe(
          Effect.annotateLogs({ source, error: error.message })
        )
      ),
      // tried again forever: the error channel below is never reached
      Effect.retry(Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("30 seconds")))),
      Effect.orDie
    )
    yield* Stream.merge(notified, Stream.tick(interval)).pipe(Stream.runForEach(() => retried))
    return yield* Effect.never
  }).pipe(Effect.scoped)

  return { drain, run }
}
