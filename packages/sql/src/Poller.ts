/**
 * DB pollers: publish a table's rows through record producers, on a schedule, without missing a row. One poller
 * per name, recorded in `poll_info(producer, last_sent, last_sent_id)` with a lease, so several pollers run per
 * process and several processes run the same pollers without publishing twice.
 *
 * - Time-based: rows whose timestamp column (`updated_at`) moved past the saved cursor, in batches ordered by
 *   (timestamp, id), the cursor saved after each batch (the last row's timestamp and id, never "now"). The window
 *   ends at `now() - delayTime` and, with the snapshot guard (the default), just before the start of the oldest
 *   transaction open in the database (or, with `"tableWriters"`, of the oldest that has written to the table), so a
 *   transaction that began before the window and commits after it is still ahead of the cursor.
 * - State-based: the user's query selects the rows; after each batch they are marked published (or failed) with a
 *   timestamp.
 *
 * A batch is published and its cursor (or its rows' state) saved in one transaction: with the outbox backend that
 * makes the poller exactly-once into the outbox; with Kafka, a poller killed between the send and the save sends the
 * batch again (at least once).
 *
 * @since 0.1.0
 */
import { Background, type Producer } from "@deimos/core"
import { type SQL, sql } from "drizzle-orm"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as Database from "./Database.js"
import type { DatabaseError } from "./DatabaseError.js"
import type * as Migrations from "./Migrations.js"
import { createSchema, type Migration, migrationName, quote, tableName } from "./Migrations.js"
import * as RecordProducer from "./RecordProducer.js"

/**
 * Where `poll_info` lives.
 *
 * @since 0.1.0
 */
export type Naming = Migrations.Naming

/** The quoted `poll_info` table. */
export const namesOf = (naming: Naming = {}) => {
  return { pollInfo: tableName(naming, "poll_info") }
}

/**
 * The migrations that create `poll_info`: one row per poller, its cursor and its lease.
 *
 * @since 0.1.0
 */
export const migrations = (naming: Naming = {}): ReadonlyArray<Migration> => [{
  name: migrationName(naming, "poller_1"),
  statements: [
    ...createSchema(naming),
    `create table if not exists ${namesOf(naming).pollInfo} (
      producer text primary key,
      last_sent timestamptz,
      last_sent_id bigint,
      locked_by text,
      locked_at timestamptz
    )`
  ]
}]

/**
 * Time-based polling of a timestamp column.
 *
 * @since 0.1.0
 */
export interface TimeBased {
  readonly mode: "time"
  /** The column that moves on every change. @default "updated_at" */
  readonly timestampColumn?: string | undefined
  /** The tie-break column (an integer). @default the record producer's primary key */
  readonly idColumn?: string | undefined
  /** How far behind now the window ends, for writers whose clock or timestamps lag. @default 2 seconds */
  readonly delayTime?: Duration.DurationInput | undefined
  /** Publish the whole table on every run (no cursor). @default false */
  readonly fullTable?: boolean | undefined
  /** A poller without a cursor yet starts from the oldest row (else from now). @default true */
  readonly startFromBeginning?: boolean | undefined
  /**
   * Which open transactions end the window just before their start, so that a transaction committing late is not
   * missed:
   * - `"transactions"`: every transaction open in the database (as `pg_stat_activity` shows it to this role). Exact;
   *   a long transaction of any kind (a `pg_dump`, a report) holds the window back while it is open.
   * - `"tableWriters"`: the transactions holding a write lock on the table (they have written to it). Unrelated
   *   transactions do not hold it back; exact for transactions that write the table within `delayTime` of their
   *   start.
   * - `"none"`: `delayTime` alone (a transaction longer than it, committing after a poll, may be missed).
   *
   * @default "transactions"
   */
  readonly snapshotGuard?: "transactions" | "tableWriters" | "none" | undefined
}

/**
 * State-based polling: the user's query, then the rows marked.
 *
 * @since 0.1.0
 */
export interface StateBased {
  readonly mode: "state"
  /** The rows to publish (at most `limit`), e.g. `where publish_state is null order by id limit ${limit}`. */
  readonly query: (limit: number) => SQL
  /** The key column the rows are marked by. @default the record producer's primary key */
  readonly idColumn?: string | undefined
  /** @default "publish_state" */
  readonly stateColumn?: string | undefined
  /** @default "published" */
  readonly publishedState?: string | undefined
  /** @default "failed" */
  readonly failedState?: string | undefined
  /** The column set to the publish time. @default "published_at" */
  readonly publishedAtColumn?: string | undefined
}

/**
 * @since 0.1.0
 */
export interface Options extends Naming {
  /** The poller's name: its row in `poll_info`. */
  readonly name: string
  /** Where every batch goes: one query may feed several producers (all of the same table). */
  readonly producers: readonly [RecordProducer.Any, ...ReadonlyArray<RecordProducer.Any>]
  readonly mode: TimeBased | StateBased
  /** How often it polls. @default 60 seconds */
  readonly runEvery?: Duration.DurationInput | undefined
  /** Rows per batch. @default 1000 */
  readonly batchSize?: number | undefined
  /** Tries again of a batch that fails with an error that is not retriable; then the batch is skipped. @default 1 */
  readonly retries?: number | undefined
  /** A message the broker refuses as too large is skipped (counted, reported) rather than failing its batch. @default false */
  readonly skipTooLarge?: boolean | undefined
  /** A lease not renewed this long is taken over by another process. @default 1 minute */
  readonly leaseTimeout?: Duration.DurationInput | undefined
  /** This process's name in the lease. @default a random UUID */
  readonly workerId?: string | undefined
  /** The delays between tries of a batch that failed with a retriable error (broker away), tried forever. @default exponential from 1 second, at most 1 minute */
  readonly backoff?: Schedule.Schedule<unknown> | undefined
}

/**
 * A poller that cannot go on: its lease was taken over while it worked (it stops that poll, saving nothing).
 *
 * @since 0.1.0
 */
export class PollerError extends Data.TaggedError("PollerError")<{
  readonly reason: "LeaseLost"
  readonly poller: string
  readonly message: string
}> {}

/**
 * What one poll did.
 *
 * @since 0.1.0
 */
export interface PollResult {
  /** False when another process held the lease (nothing was done). */
  readonly leased: boolean
  /** Rows published (per producer). */
  readonly published: number
  /** Rows not published: refused by the schema, or too large when `skipTooLarge`. */
  readonly invalid: number
  /** Batches skipped after `retries` failed tries. */
  readonly skippedBatches: number
}

/**
 * `db_poller.published{poller}`: rows published by the poller.
 *
 * @since 0.1.0
 */
export const publishedRows = Metric.counter("db_poller.published", { description: "Rows published by the poller" })

/**
 * `db_poller.invalid{poller}`: rows the schema refused (or too large), skipped.
 *
 * @since 0.1.0
 */
export const invalidRows = Metric.counter("db_poller.invalid", { description: "Rows the poller could not publish" })

/**
 * `db_poller.skipped_batches{poller}`: batches skipped after their retries.
 *
 * @since 0.1.0
 */
export const skippedBatches = Metric.counter("db_poller.skipped_batches", {
  description: "Batches the poller skipped after their retries"
})

type BatchError = DatabaseError | Producer.Producer.Error | PollerError

const isRetriable = (error: BatchError) => "retriable" in error && error.retriable === true

/**
 * One poll: takes the lease, publishes every batch, saves the cursor after each (renewing the lease meanwhile, also
 * while a batch waits for the broker), gives the lease back.
 *
 * @since 0.1.0
 */
export const poll = (
  options: Options
): Effect.Effect<PollResult, DatabaseError | PollerError, RecordProducer.Requirements> =>
  // each run of the effect counts its own rows
  Effect.suspend(() => pollOnce(options))

const pollOnce = (
  options: Options
): Effect.Effect<PollResult, DatabaseError | PollerError, RecordProducer.Requirements> => {
  const { name, producers } = options
  const records = producers[0]
  const { pollInfo } = namesOf(options)
  const table = quote(records.tableName)
  const batchSize = options.batchSize ?? 1000
  const me = options.workerId ?? globalThis.crypto.randomUUID()
  const leaseSeconds = Duration.toSeconds(Duration.decode(options.leaseTimeout ?? Duration.minutes(1)))
  const retries = options.retries ?? 1
  const backoff = options.backoff ??
    Schedule.exponential("1 second").pipe(Schedule.union(Schedule.spaced("1 minute")))
  const skip = (error: Producer.Producer.Error) =>
    RecordProducer.isSchemaError(error) || (options.skipTooLarge === true && RecordProducer.isTooLarge(error))
  const tag = <A extends Metric.Metric.Counter<number>>(metric: A) => Metric.tagged(metric, "poller", name)
  const mode = options.mode
  const delaySeconds = mode.mode === "time"
    ? Duration.toMillis(Duration.decode(mode.delayTime ?? Duration.seconds(2))) / 1000
    : 0

  let published = 0
  let invalid = 0
  let skipped = 0

  const keyOf = (row: RecordProducer.Row) => String(records.normalize(row)[records.primaryKey.property])
  /** Publishes the rows to every producer: the keys of the rows that failed, with their errors. */
  const publish = (rows: ReadonlyArray<RecordProducer.Row>) =>
    Effect.gen(function*() {
      const failed = new Map<string, string>()
      for (const producer of producers) {
        for (const f of yield* producer.sendEventsSkipping(rows, skip)) failed.set(keyOf(f.row), f.error.message)
      }
      return failed
    })

  /** A batch with its save, in one transaction; retried as the policy says; skipped when the retries run out. */
  const batch = (
    rows: ReadonlyArray<RecordProducer.Row>,
    save: (failed: ReadonlyMap<string, string>) => Effect.Effect<void, DatabaseError | PollerError, Database.Database>,
    onSkip: (error: BatchError) => Effect.Effect<void, DatabaseError | PollerError, Database.Database>
  ) =>
    Database.transaction(Effect.gen(function*() {
      const failed = yield* publish(rows)
      yield* save(failed)
      return failed
    })).pipe(
      Effect.retry({ while: isRetriable, schedule: backoff }),
      Effect.retry({ while: (e) => e._tag !== "PollerError", times: retries }),
      Effect.tap((failed) =>
        Effect.gen(function*() {
          published += rows.length - failed.size
          yield* Metric.incrementBy(tag(publishedRows), rows.length - failed.size)
          if (failed.size === 0) return
          invalid += failed.size
          yield* Metric.incrementBy(tag(invalidRows), failed.size)
          yield* Effect.logError("Rows skipped by the poller: they cannot be published").pipe(
            Effect.annotateLogs({ poller: name, count: failed.size, errors: [...new Set(failed.values())] })
          )
        })
      ),
      Effect.catchIf((e): e is Exclude<BatchError, PollerError> => e._tag !== "PollerError", (error) =>
        Effect.gen(function*() {
          skipped += 1
          yield* Metric.increment(tag(skippedBatches))
          yield* Effect.logError("A batch failed its retries and is skipped").pipe(
            Effect.annotateLogs({ poller: name, rows: rows.length, error: error.message })
          )
          yield* Database.transaction(onSkip(error)).pipe(Effect.retry({ while: isRetriable, schedule: backoff }))
        }))
    )

  const leaseLost = new PollerError({
    reason: "LeaseLost",
    poller: name,
    message: `Poller ${name}: its lease was taken over by another process; this poll stops without saving`
  })
  /** Saves the cursor (and renews the lease) if the lease is still ours. */
  const saveCursor = (ts: string, id: string) =>
    Effect.flatMap(
      Database.execute(sql`update ${sql.raw(pollInfo)} set last_sent = ${ts}::timestamptz,
        last_sent_id = ${id}::bigint, locked_at = now() where producer = ${name} and locked_by = ${me}
        returning producer`),
      (rows) => rows.length === 1 ? Effect.void : Effect.fail(leaseLost)
    )
  const renew = Effect.flatMap(
    Database.execute(sql`update ${sql.raw(pollInfo)} set locked_at = now()
      where producer = ${name} and locked_by = ${me} returning producer`),
    (rows) => rows.length === 1 ? Effect.void : Effect.fail(leaseLost)
  )

  const timeBased = (m: TimeBased, from: { readonly ts: string; readonly id: string }) =>
    Effect.gen(function*() {
      const ts = quote(m.timestampColumn ?? "updated_at")
      const id = quote(m.idColumn ?? records.primaryKey.column)
      const guardMode = m.snapshotGuard ?? "transactions"
      const guard = guardMode === "none"
        ? sql`null`
        : guardMode === "tableWriters"
        ? sql`(select min(a.xact_start) - interval '1 microsecond' from pg_locks l join pg_stat_activity a
            on a.pid = l.pid where l.locktype = 'relation' and l.relation = ${table}::regclass
            and l.mode = 'RowExclusiveLock' and a.pid <> pg_backend_pid())`
        : sql`(select min(xact_start) - interval '1 microsecond'
            from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()
            and xact_start is not null and backend_type = 'client backend')`
      const bound = yield* Database.execute(
        sql`select least(now() - make_interval(secs => ${delaySeconds}), ${guard})::text as upper`
      )
      const upper = String(bound[0].upper)
      let cursor = m.fullTable === true ? { ts: "-infinity", id: "-9223372036854775808" } : from
      while (true) {
        const where = m.fullTable === true
          ? sql`${sql.raw(id)} > ${cursor.id}::bigint`
          : sql`((${sql.raw(ts)} = ${cursor.ts}::timestamptz and ${sql.raw(id)} > ${cursor.id}::bigint)
              or ${sql.raw(ts)} > ${cursor.ts}::timestamptz) and ${sql.raw(ts)} <= ${upper}::timestamptz`
        const order = m.fullTable === true ? sql.raw(id) : sql.raw(`${ts}, ${id}`)
        const rows = yield* Database.execute(sql`select t.*, ${sql.raw(ts)}::text as "__deimos_ts",
          ${sql.raw(id)}::text as "__deimos_id" from ${sql.raw(table)} t where ${where}
          order by ${order} limit ${batchSize}`)
        if (rows.length === 0) break
        const last = rows[rows.length - 1]
        const next = { ts: String(last.__deimos_ts), id: String(last.__deimos_id) }
        const save = () => m.fullTable === true ? renew : saveCursor(next.ts, next.id)
        yield* batch(rows, save, save)
        cursor = next
        if (rows.length < batchSize) break
      }
    })

  const stateBased = (m: StateBased) =>
    Effect.gen(function*() {
      const id = m.idColumn ?? records.primaryKey.column
      const state = quote(m.stateColumn ?? "publish_state")
      const at = quote(m.publishedAtColumn ?? "published_at")
      // the keys go as untyped parameters: Postgres reads them as the column's type, so the key's index serves
      const mark = (rows: ReadonlyArray<RecordProducer.Row>, value: string) =>
        rows.length === 0 ? Effect.void : Database.execute(
          sql`update ${sql.raw(table)} set ${sql.raw(state)} = ${value}, ${sql.raw(at)} = now()
            where ${sql.raw(quote(id))} in (${sql.join(rows.map((r) => sql`${String(r[id])}`), sql`, `)})`
        ).pipe(Effect.asVoid)
      const published = m.publishedState ?? "published"
      const failedState = m.failedState ?? "failed"
      while (true) {
        const rows = yield* Database.execute(m.query(batchSize))
        if (rows.length === 0) break
        yield* batch(
          rows,
          (failed) =>
            Effect.all([
              mark(rows.filter((r) => !failed.has(keyOf(r))), published),
              mark(rows.filter((r) => failed.has(keyOf(r))), failedState),
              renew
            ], { discard: true }),
          () => Effect.zipRight(mark(rows, failedState), renew)
        )
        if (rows.length < batchSize) break
      }
    })

  return Effect.gen(function*() {
    const start = mode.mode === "time" && mode.startFromBeginning === false ? sql`now()` : sql`'-infinity'::timestamptz`
    yield* Database.execute(sql`insert into ${sql.raw(pollInfo)} (producer, last_sent, last_sent_id)
      values (${name}, ${start}, 0) on conflict (producer) do nothing`)
    const leased = yield* Database.execute(sql`update ${sql.raw(pollInfo)} set locked_by = ${me}, locked_at = now()
      where producer = ${name} and (locked_by is null or locked_by = ${me}
        or locked_at < now() - make_interval(secs => ${leaseSeconds}))
      returning last_sent::text as last_sent, last_sent_id::text as last_sent_id`)
    if (leased.length === 0) return { leased: false, published: 0, invalid: 0, skippedBatches: 0 }
    const release = Database.execute(sql`update ${sql.raw(pollInfo)} set locked_by = null
      where producer = ${name} and locked_by = ${me}`).pipe(Effect.ignore)
    const from = { ts: String(leased[0].last_sent), id: String(leased[0].last_sent_id ?? 0) }
    // the lease renewed a few times per timeout while the poll runs, so a batch waiting long (for a broker away)
    // keeps it; a renewal that finds it taken over changes nothing (the next save stops the poll)
    const heartbeat = renew.pipe(
      Effect.ignore,
      Effect.repeat(Schedule.spaced(Duration.seconds(Math.max(0.1, leaseSeconds / 3)))),
      Effect.delay(Duration.seconds(Math.max(0.1, leaseSeconds / 3)))
    )
    yield* Effect.scoped(Effect.zipRight(
      Effect.forkScoped(heartbeat),
      mode.mode === "time" ? timeBased(mode, from) : stateBased(mode)
    )).pipe(Effect.ensuring(release))
    return { leased: true, published, invalid, skippedBatches: skipped }
  }).pipe(
    Effect.withSpan("deimos-db-poller", { attributes: { poller: name, mode: mode.mode } })
  )
}

/**
 * Polls every `runEvery` until interrupted; a failed poll is logged and the next one comes on time.
 *
 * @since 0.1.0
 */
export const run = (options: Options): Effect.Effect<never, never, RecordProducer.Requirements> =>
  poll({ ...options, workerId: options.workerId ?? globalThis.crypto.randomUUID() }).pipe(
    Effect.catchAll((error) =>
      Effect.logError("The poll failed").pipe(Effect.annotateLogs({ poller: options.name, error: error.message }))
    ),
    Effect.repeat(Schedule.spaced(options.runEvery ?? Duration.seconds(60))),
    Effect.zipRight(Effect.never)
  )

/**
 * Pollers as a layer: building it starts them, each a fiber of the layer's scope; closing the scope stops them
 * (a batch in flight is rolled back and its cursor stays where it was).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  pollers: ReadonlyArray<Options>
): Layer.Layer<Background.Running<never>, never, RecordProducer.Requirements> =>
  Background.fork(
    "Pollers",
    Effect.forEach(pollers, run, { concurrency: "unbounded", discard: true }).pipe(Effect.zipRight(Effect.never))
  )
