/**
 * The record consumer against a raw upsert loop, in one run, local Postgres and the dev broker (a process of its
 * own, with its Schema Registry):
 *
 * 1. `RecordConsumer` in batch mode (compacted, `inlineBatch`), one group member, consuming `BENCH_MESSAGES`
 *    (200k) Avro messages (Confluent wire format, registry backend) over 10k keys from a topic of 3 partitions into
 *    a table: decode, compact per batch, one transaction per batch, `INSERT … ON CONFLICT (id) DO UPDATE` per 1000
 *    rows, commit the offsets. Timed from the first batch reaching the handler to the handler having succeeded for
 *    every message (its `handler{status:success}` count); the time from starting the consumer to its first batch
 *    (connecting, joining the group, the first fetch) is printed apart, not counted;
 * 2. the raw baseline: the same rows (the batches the consumer was handed in the warm-up run, compacted the same way,
 *    already decoded: no Kafka, no Avro) written with postgres.js directly, one transaction per batch, one
 *    `INSERT … ON CONFLICT (id) DO UPDATE` per 1000 rows.
 *
 * Each side is warmed up once; then `BENCH_ROUNDS` (5) rounds, the order alternating, the table truncated before
 * each. Rates are messages (not rows) per second; the ratio is the median of the per-round ratios (consumer / raw).
 * Ends with `RESULT sink_msgs_per_s=N sink_vs_raw_ratio=R`.
 *
 * Run: `npm run bench:sink` (Postgres at `DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/test;
 * `BENCH_MESSAGES`, `BENCH_ROUNDS`, `BENCH_BATCH` (messages per batch, 5000), `BENCH_MEMBERS` (group members, 1)
 * change the sizes).
 */
import { AvroBackend } from "@deimos/avro"
import { DeimosConfig, Metrics, Producer, SchemaRef } from "@deimos/core"
import { Consumers, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { Database, RecordConsumer } from "@deimos/sql"
import { bigint, integer, pgSchema, text, timestamp } from "drizzle-orm/pg-core"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import postgres from "postgres"
import { median, startBroker } from "./shared.js"

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const total = Number(process.env.BENCH_MESSAGES ?? 200_000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const batchSize = Number(process.env.BENCH_BATCH ?? 5000)
const members = Number(process.env.BENCH_MEMBERS ?? 1)
const keys = 10_000
const partitions = 3
const dbBatch = 1000
const schema = `deimos_sink_bench_${process.pid}`

interface Payload {
  readonly id: string
  readonly n: number
  readonly price: number
  readonly name: string
  readonly sold_at: number
}
const Payload = SchemaRef.make<Payload>({
  name: "Payload",
  namespace: "bench.sink",
  avro: {
    type: "record",
    name: "Payload",
    namespace: "bench.sink",
    fields: [
      { name: "id", type: "string" },
      { name: "n", type: "long" },
      { name: "price", type: "int" },
      { name: "name", type: "string" },
      { name: "sold_at", type: { type: "long", logicalType: "timestamp-millis" } }
    ]
  }
})
const start = Date.UTC(2025, 0, 1)
const payloads: ReadonlyArray<Payload> = Array.from({ length: total }, (_, n) => ({
  id: `key-${n % keys}`,
  n,
  price: n % 1000,
  name: `widget number ${n}`,
  sold_at: start + n
}))

const table = pgSchema(schema).table("widgets", {
  id: text("id").primaryKey(),
  n: bigint("n", { mode: "number" }).notNull(),
  price: integer("price").notNull(),
  name: text("name").notNull(),
  soldAt: timestamp("sold_at", { withTimezone: true, precision: 3 }).notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow()
})

const now = () => performance.now()
const rate = (n: number) => Math.round(n).toLocaleString("en-US")

const program = Effect.gen(function*() {
  const { broker, registry } = yield* startBroker(partitions)
  const pg = postgres(url, { max: 2, onnotice: () => {} })
  yield* Effect.addFinalizer(() =>
    Effect.promise(() => pg.unsafe(`drop schema if exists "${schema}" cascade`).then(() => pg.end({ timeout: 5 })))
  )
  yield* Effect.promise(() =>
    pg.unsafe(`create schema "${schema}";
      create table "${schema}".widgets (id text primary key, n bigint not null, price integer not null,
        name text not null, sold_at timestamptz(3) not null, created_at timestamptz not null default now(),
        updated_at timestamptz not null default now())`)
  )
  const truncate = Effect.promise(() => pg.unsafe(`truncate "${schema}".widgets`))
  const count = Effect.promise(() => pg.unsafe(`select count(*)::int as n from "${schema}".widgets`)).pipe(
    Effect.map((rows) => Number(rows[0].n))
  )

  const context = yield* Layer.build(Layer.mergeAll(
    KafkaJs.layer({ brokers: [broker], clientId: "bench-sink", logLevel: "nothing" }),
    AvroBackend.layerSchemaRegistry({ url: registry }),
    DeimosConfig.layer(),
    Database.layer({ url: Redacted.make(url), max: 4, applicationName: "deimos-sink-bench" })
  ))
  const topic = "sink-widgets"

  // the messages, produced once through the toolkit's kafka backend (registry backend, Confluent wire format)
  const producer = Producer.make({ topic, schema: Payload, keyConfig: { field: "id" }, maxBatchSize: 1000 })
  const produced = now()
  yield* producer.publishList(payloads).pipe(Effect.provide(KafkaProducerBackend.layer()), Effect.provide(context))
  console.log(`produced ${rate(total)} messages in ${((now() - produced) / 1000).toFixed(1)} s`)

  // ---- the record consumer
  let groups = 0
  /** The batches the consumer was handed (its messages' payloads), recorded in the warm-up run for the raw side. */
  let recorded: Array<ReadonlyArray<Payload>> | undefined
  const consume = (record: boolean) =>
    Effect.gen(function*() {
      const batches: Array<ReadonlyArray<Payload>> = []
      let first: number | undefined
      const consumer = RecordConsumer.make({
        topic,
        groupId: `sink-${process.pid}-${++groups}`,
        name: `sink-${groups}`,
        schema: Payload,
        keyConfig: { field: "id" },
        table,
        delivery: "inlineBatch",
        maxBatchSize: batchSize,
        maxBytesPerPartition: 4 * 1024 * 1024,
        maxWaitTime: "100 millis",
        maxConcurrency: members,
        preProcess: (messages) =>
          Effect.sync(() => {
            first ??= now()
            if (record) batches.push(messages.map((m) => m.payload as Payload))
            return messages
          })
      })
      const success = Metric.tagged(Metric.tagged(Metrics.handler, "status", "success"), "topic", topic)
      const before = (yield* Metric.value(success)).count
      const started = now()
      const fiber = yield* Effect.fork(Consumers.run([consumer]))
      while ((yield* Metric.value(success)).count - before < total) yield* Effect.sleep("5 millis")
      const ended = now()
      yield* Fiber.interrupt(fiber)
      if (record) recorded = batches
      return { seconds: (ended - first!) / 1000, join: (first! - started) / 1000 }
    }).pipe(Effect.provide(context))

  // ---- the raw baseline: the same batches, compacted, upserted with postgres.js
  const raw = Effect.promise(async () => {
    const batches = recorded!
    const started = now()
    for (const batch of batches) {
      const last = new Map<string, Payload>()
      for (const p of batch) {
        last.delete(p.id)
        last.set(p.id, p)
      }
      const rows = [...last.values()].map((p) => ({
        id: p.id,
        n: p.n,
        price: p.price,
        name: p.name,
        sold_at: new Date(p.sold_at)
      }))
      await pg.begin(async (tx) => {
        for (let i = 0; i < rows.length; i += dbBatch) {
          await tx`insert into ${tx(schema)}.widgets ${
            tx(rows.slice(i, i + dbBatch), "id", "n", "price", "name", "sold_at")
          } on conflict (id) do update set n = excluded.n, price = excluded.price, name = excluded.name,
            sold_at = excluded.sold_at, updated_at = now()`
        }
      })
    }
    return (now() - started) / 1000
  })

  const check = (what: string) =>
    Effect.flatMap(count, (n) => {
      if (n !== keys) return Effect.die(new Error(`${what} left ${n} rows, not ${keys}`))
      return Effect.promise(() =>
        pg.unsafe(`select count(*)::int as n from "${schema}".widgets where n < ${total - keys}`)
      ).pipe(Effect.flatMap((rows) =>
        Number(rows[0].n) === 0
          ? Effect.void
          : Effect.die(new Error(`${what}: ${rows[0].n} rows do not hold their key's last message`))
      ))
    })

  // warm-up (JIT, connections, the registry's schema, the broker's code paths); records the consumer's batches
  yield* truncate
  yield* consume(true)
  yield* check("the record consumer")
  yield* truncate
  yield* raw
  yield* check("the raw upserts")
  const rowsWritten = recorded!.reduce((n, b) => n + new Set(b.map((p) => p.id)).size, 0)
  console.log(
    `${recorded!.length} batches (${rate(total / recorded!.length)} messages, ${
      rate(rowsWritten / recorded!.length)
    } rows after compaction on average)`
  )

  const fw: Array<number> = []
  const joins: Array<number> = []
  const rw: Array<number> = []
  for (let round = 0; round < rounds; round++) {
    const sides = round % 2 === 0 ? (["fw", "raw"] as const) : (["raw", "fw"] as const)
    for (const side of sides) {
      yield* truncate
      if (side === "fw") {
        const { join, seconds } = yield* consume(false)
        fw.push(seconds)
        joins.push(join)
        yield* check("the record consumer")
      } else {
        rw.push(yield* raw)
        yield* check("the raw upserts")
      }
    }
    console.log(
      `round ${round + 1}: RecordConsumer ${rate(total / fw[round])} msg/s, raw upserts ${
        rate(total / rw[round])
      } msg/s, ratio ${(rw[round] / fw[round]).toFixed(2)}`
    )
  }
  const ratios = fw.map((t, i) => rw[i] / t)
  const fwRate = total / median(fw)
  console.log(`\n${rate(total)} Avro messages over ${rate(keys)} keys, ${partitions} partitions, ${rounds} rounds:`)
  console.log(`  RecordConsumer (batch, compacted), Kafka → Postgres   ${rate(fwRate)} msg/s (median)`)
  console.log(`  raw postgres.js upserts of the same rows (no Kafka)   ${rate(total / median(rw))} msg/s (median)`)
  console.log(`  ratio (median of per-round ratios)                    ${median(ratios).toFixed(2)}`)
  console.log(
    `  consumer start to its first batch (connect, join)      ${median(joins).toFixed(2)} s (median, not counted)`
  )
  console.log(`RESULT sink_msgs_per_s=${Math.round(fwRate)} sink_vs_raw_ratio=${median(ratios).toFixed(2)}`)
})

program.pipe(
  Effect.scoped,
  Logger.withMinimumLogLevel(LogLevel.Warning),
  Effect.runPromise
).then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
