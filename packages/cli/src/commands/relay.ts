/**
 * `deimos relay`: the outbox relay (`OutboxRelay`) as a worker process, configured from the environment and flags;
 * SIGINT/SIGTERM stops it gracefully (the batches in flight finish, the leases are given back).
 *
 * @since 0.1.0
 */
import { Background } from "@deimos/core"
import { KafkaJs } from "@deimos/kafka"
import { Database, Migrations, Outbox, OutboxRelay } from "@deimos/sql"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { sql } from "drizzle-orm"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Failures from "../Failures.js"
import * as MigrationSets from "../MigrationSets.js"
import * as Progress from "../Progress.js"
import * as Settings from "../Settings.js"

const flags = [
  { flag: "database-url", env: "DATABASE_URL" },
  { flag: "brokers", env: "KAFKA_BROKERS" },
  { flag: "schema", env: "OUTBOX_SCHEMA" },
  { flag: "prefix", env: "OUTBOX_PREFIX" },
  { flag: "concurrency", env: "OUTBOX_CONCURRENCY" },
  { flag: "batch-size", env: "OUTBOX_BATCH_SIZE" }
] as const

const options = {
  databaseUrl: Settings.setting("database-url", "DATABASE_URL", "Postgres URL (DATABASE_* variables apply too)."),
  brokers: Settings.setting(
    "brokers",
    "KAFKA_BROKERS",
    "Kafka brokers, comma-separated (KAFKA_* variables apply too)."
  ),
  schema: Settings.setting("schema", "OUTBOX_SCHEMA", "Postgres schema of the outbox tables."),
  prefix: Settings.setting("prefix", "OUTBOX_PREFIX", "Prefix of the outbox table names."),
  concurrency: Settings.setting("concurrency", "OUTBOX_CONCURRENCY", "Workers of this relay (default 4)."),
  batchSize: Settings.setting("batch-size", "OUTBOX_BATCH_SIZE", "Rows per batch (default 1000)."),
  migrate: Options.boolean("migrate").pipe(
    Options.withDescription(
      "Apply the outbox migrations first (as deimos migrate --set outbox). Env OUTBOX_MIGRATE=true."
    )
  )
}

/** Rows shipped so far by this process: the sum of `db_producer.process` over topics. */
const shipped = Effect.map(Metric.snapshot, (pairs) =>
  pairs.reduce((n, pair) => {
    if (pair.metricKey.name !== "db_producer.process") return n
    const state = pair.metricState as { readonly count?: number | bigint }
    return n + Number(state.count ?? 0)
  }, 0))

/**
 * @since 0.1.0
 */
export const command = Command.make("relay", options, (o) =>
  Effect.gen(function*() {
    // every setting read before connecting anything: a configuration mistake is reported as one
    const [relay, database, kafka] = yield* Config.all([OutboxRelay.config, Database.config, KafkaJs.config])
    const migrate = o.migrate || (yield* Config.withDefault(Config.boolean("OUTBOX_MIGRATE"), false))
    const naming = { schema: relay.schema, prefix: relay.prefix }
    // this process is a relay worker from here on
    yield* OutboxRelay.tuneWorkerHeap
    return yield* Effect.gen(function*() {
      if (migrate) {
        const applied = yield* Migrations.run(Outbox.migrations(naming), { table: MigrationSets.recordTable(naming) })
        yield* Effect.logInfo(applied.length === 0 ? "Migrations: nothing to apply" : `Applied ${applied.join(", ")}`)
      }
      const messages = Outbox.namesOf(naming).messages
      const rate = yield* Progress.rate()
      yield* Progress.show(Effect.gen(function*() {
        const rows = yield* Database.execute(sql.raw(`select count(*)::bigint as n from ${messages}`))
        const total = yield* shipped
        return `relay: ${total} rows shipped (${Progress.formatRate(rate(total))}), ${Number(rows[0].n)} pending`
      }))
      yield* Effect.logInfo(`Relay started (outbox ${messages})`)
      return yield* Background.launch(OutboxRelay.layer(relay))
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.mergeAll(Database.layer(database), KafkaJs.layer(kafka)))
    )
  }).pipe(
    Settings.provide([
      ["DATABASE_URL", o.databaseUrl],
      ["KAFKA_BROKERS", o.brokers],
      ["OUTBOX_SCHEMA", o.schema],
      ["OUTBOX_PREFIX", o.prefix],
      ["OUTBOX_CONCURRENCY", o.concurrency],
      ["OUTBOX_BATCH_SIZE", o.batchSize]
    ], flags),
    Failures.failed("relay failed")
  )).pipe(
    Command.withDescription(
      "Run the outbox relay until SIGINT/SIGTERM. Reads DATABASE_URL and the DATABASE_* variables, KAFKA_BROKERS " +
        "and the KAFKA_* variables, the OUTBOX_* variables (SCHEMA, PREFIX, CONCURRENCY, BATCH_SIZE, LEASE_TIMEOUT, " +
        "POLL_INTERVAL, COMPACT_TOPICS, WORKER_ID, MIGRATE), DEIMOS_PROGRESS and DEIMOS_PROGRESS_INTERVAL."
    )
  )
