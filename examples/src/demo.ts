/**
 * The zero-setup demo of the whole pipeline, on embedded defaults: the dev Kafka broker and Schema Registry in this
 * process, and PGlite (Postgres in WebAssembly, in memory) unless `DATABASE_URL` points at a real Postgres.
 *
 * 1. A "widgets" service writes rows and publishes them through the **outbox**, in one transaction per batch.
 * 2. The **outbox relay** ships the rows to the `widgets` topic (Avro, schemas registered in the registry).
 * 3. A **record consumer** upserts the topic into `widget_copies` (batch mode, last message per key wins).
 * 4. A **checkpointed consumer** logs an event per message; one poison widget lands in the failures table, the
 *    handler is "fixed", and the failure is retried: the event is stored and the failure gone.
 * 5. A **time-based poller** publishes the changes of a `gadgets` table to the `gadgets` topic; a consumer counts them.
 *
 * It prints progress while it runs (redrawn on a terminal, a line every 2 seconds otherwise) and a summary that checks
 * that source and sink match, then exits 0 (1 if anything is missing after two minutes).
 *
 * Run: `npm run demo` (`DATABASE_URL=postgres://… npm run demo` for Postgres; `DEMO_WIDGETS=20000` for more rows).
 */
import { AvroBackend } from "@deimos/avro"
import { DevCluster } from "@deimos/broker"
import { Checkpoint, CheckpointTables } from "@deimos/checkpoint"
import { Consumer, DeimosConfig, Producer, SchemaRef } from "@deimos/core"
import { Consumers, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { Database, Migrations, Outbox, OutboxRelay, Poller, RecordConsumer, RecordProducer } from "@deimos/sql"
import { NodeRuntime } from "@effect/platform-node"
import { sql } from "drizzle-orm"
import { bigserial, integer, pgSchema, text, timestamp } from "drizzle-orm/pg-core"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"

const widgetCount = Number(process.env.DEMO_WIDGETS ?? 2000)
const gadgetCount = 200
const schema = "deimos_demo"
const poisonId = `w${Math.floor(widgetCount / 3)}`

// --- the schemas (Avro, registered in the dev registry) and the tables --------------------------------------------

interface Widget {
  readonly id: string
  readonly name: string
  readonly price: number
}
const Widget = SchemaRef.make<Widget>({
  name: "Widget",
  namespace: "demo",
  avro: {
    type: "record",
    name: "Widget",
    namespace: "demo",
    fields: [{ name: "id", type: "string" }, { name: "name", type: "string" }, { name: "price", type: "int" }]
  }
})

interface Gadget {
  readonly gadget_id: string
  readonly label: string
}
const Gadget = SchemaRef.make<Gadget>({
  name: "Gadget",
  namespace: "demo",
  avro: {
    type: "record",
    name: "Gadget",
    namespace: "demo",
    fields: [{ name: "gadget_id", type: "string" }, { name: "label", type: "string" }]
  }
})

const demo = pgSchema(schema)
const widgets = demo.table("widgets", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  price: integer("price").notNull()
})
const widgetCopies = demo.table("widget_copies", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  price: integer("price").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull()
})
const gadgets = demo.table("gadgets", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  gadget_id: text("gadget_id").notNull(),
  label: text("label").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow()
})

const appTables = [{
  name: `${schema}.demo_1`,
  statements: [
    `create schema if not exists ${schema}`,
    `create table if not exists ${schema}.widgets (id text primary key, name text not null, price integer not null)`,
    `create table if not exists ${schema}.widget_copies (id text primary key, name text not null,
      price integer not null, created_at timestamptz not null, updated_at timestamptz not null)`,
    `create table if not exists ${schema}.gadgets (id bigserial primary key, gadget_id text not null,
      label text not null, updated_at timestamptz not null default now())`
  ]
}]

// --- producers and consumers ---------------------------------------------------------------------------------------

const widgetEvents = Producer.make({ topic: "widgets", schema: Widget, keyConfig: { field: "id" } })

const copies = RecordConsumer.make({
  topic: "widgets",
  groupId: "widget-copies",
  schema: Widget,
  keyConfig: { field: "id" },
  table: widgetCopies,
  delivery: "inlineBatch",
  maxWaitTime: "100 millis"
})

class PoisonWidget extends Data.TaggedError("PoisonWidget")<{ readonly message: string }> {}
const handler = { fixed: false }
const audit = Checkpoint.make({
  topic: "widgets",
  groupId: "widget-audit",
  schema: Widget,
  keyConfig: { field: "id" },
  maxRetries: 1,
  backoff: { min: "50 millis", max: "100 millis" },
  tables: { schema },
  handle: (widget) =>
    widget.id === poisonId && !handler.fixed
      ? Effect.fail(new PoisonWidget({ message: `widget ${widget.id} cannot be audited (until the fix)` }))
      : Effect.succeed(Checkpoint.ack({ entityId: widget.id, eventTime: new Date(), eventType: "widget-saved" }))
})

const gadgetsSeen = new Set<string>()
const gadgetWatch = Consumer.make({
  topic: "gadgets",
  groupId: "gadget-watch",
  schema: Gadget,
  keyConfig: { field: "gadget_id" },
  handle: (gadget) => Effect.sync(() => void gadgetsSeen.add(gadget.gadget_id))
})

const gadgetPoller = Poller.layer([{
  name: "gadgets",
  schema,
  producers: [
    RecordProducer.make({
      producer: Producer.make({ topic: "gadgets", schema: Gadget, keyConfig: { field: "gadget_id" } }),
      table: gadgets
    })
  ],
  mode: { mode: "time", timestampColumn: "updated_at", delayTime: "100 millis", snapshotGuard: "tableWriters" },
  runEvery: "250 millis",
  batchSize: 100
}])

// --- the writers ---------------------------------------------------------------------------------------------------

/** Widgets in batches of 100: the rows and their events in one transaction; then a tenth of them repriced. */
const widgetService = Effect.gen(function*() {
  const all = Array.from({ length: widgetCount }, (_, i): Widget => ({
    id: `w${i}`,
    name: i === Math.floor(widgetCount / 3) ? "poison widget" : `widget ${i}`,
    price: 100 + (i % 50)
  }))
  for (let from = 0; from < all.length; from += 100) {
    const batch = all.slice(from, from + 100)
    yield* Database.transaction(Effect.gen(function*() {
      yield* Database.use((db) => db.insert(widgets).values([...batch]))
      yield* widgetEvents.publishList(batch)
    }))
  }
  const repriced = all.filter((w, i) => i % 10 === 1 && w.id !== poisonId).map((w) => ({ ...w, price: w.price + 1 }))
  for (let from = 0; from < repriced.length; from += 50) {
    const batch = repriced.slice(from, from + 50)
    yield* Database.transaction(Effect.gen(function*() {
      for (const w of batch) {
        yield* Database.use((db) => db.update(widgets).set({ price: w.price }).where(sql`id = ${w.id}`))
      }
      yield* widgetEvents.publishList(batch)
    }))
  }
  return all.length + repriced.length
}).pipe(Effect.provide(Outbox.layer({ schema })))

/** Gadgets written a few at a time, as an application would; the poller finds them. */
const gadgetWriter = Effect.gen(function*() {
  for (let i = 0; i < gadgetCount; i += 10) {
    yield* Database.use((db) =>
      db.insert(gadgets).values(
        Array.from({ length: 10 }, (_, j) => ({ gadget_id: `g${i + j}`, label: `gadget ${i + j}` }))
      )
    )
    yield* Effect.sleep("20 millis")
  }
})

// --- progress and the summary --------------------------------------------------------------------------------------

const counts = Effect.gen(function*() {
  const [row] = yield* Database.execute(sql.raw(`select
    (select count(*) from ${schema}.widgets)::int as widgets,
    (select count(*) from ${schema}.kafka_messages)::int as pending,
    (select count(*) from ${schema}.widget_copies)::int as copies,
    (select count(*) from ${schema}.widgets w full join ${schema}.widget_copies c using (id)
      where c.id is null or w.id is null or w.name <> c.name or w.price <> c.price)::int as mismatched,
    (select count(*) from ${schema}.checkpoint_events)::int as events,
    (select count(*) from ${schema}.checkpoint_failures)::int as failures,
    (select count(*) from ${schema}.gadgets)::int as gadgets`))
  return {
    widgets: Number(row.widgets),
    pending: Number(row.pending),
    copies: Number(row.copies),
    mismatched: Number(row.mismatched),
    events: Number(row.events),
    failures: Number(row.failures),
    gadgets: Number(row.gadgets),
    gadgetsPolled: gadgetsSeen.size
  }
})
type Counts = Effect.Effect.Success<typeof counts>

const line = (c: Counts, seconds: number, rates: { readonly written: number; readonly audited: number }) =>
  `${seconds.toFixed(1)} s | widgets ${c.widgets}/${widgetCount} (${Math.round(rates.written)}/s) | ` +
  `outbox pending ${c.pending} | copies ${c.copies} (${c.mismatched} differ) | ` +
  `events ${c.events} (${Math.round(rates.audited)}/s), failures ${c.failures} | ` +
  `gadgets polled ${c.gadgetsPolled}/${gadgetCount}`

const progress = (started: number) =>
  Effect.gen(function*() {
    const tty = process.stdout.isTTY === true
    let printed = 0
    let before = { at: started, widgets: 0, events: 0 }
    return yield* Effect.repeat(
      Effect.gen(function*() {
        const c = yield* counts
        const now = Date.now()
        const seconds = (now - started) / 1000
        // rates over the last second or so
        const span = Math.max(0.001, (now - before.at) / 1000)
        const rates = { written: (c.widgets - before.widgets) / span, audited: (c.events - before.events) / span }
        if (now - before.at >= 1000) before = { at: now, widgets: c.widgets, events: c.events }
        if (tty) process.stdout.write(`\r\x1b[2K${line(c, seconds, rates)}`)
        else if (seconds - printed >= 2) {
          printed = seconds
          console.log(line(c, seconds, rates))
        }
      }).pipe(Effect.ignore),
      Schedule.spaced("250 millis")
    )
  })

const waitFor = (what: string, done: (c: Counts) => boolean) =>
  Effect.repeat(counts, { until: done, schedule: Schedule.spaced("100 millis") }).pipe(
    Effect.timeoutFail({ duration: "2 minutes", onTimeout: () => new Error(`timed out waiting for ${what}`) })
  )

// --- the program ---------------------------------------------------------------------------------------------------

const program = Effect.gen(function*() {
  const started = Date.now()
  const url = process.env.DATABASE_URL
  console.log(`Deimos demo: ${widgetCount} widgets, ${gadgetCount} gadgets`)
  console.log(`  Kafka + Schema Registry: the dev cluster, in this process`)
  console.log(`  Database: ${url === undefined ? "PGlite (in memory, in this process)" : "Postgres from DATABASE_URL"}`)

  const cluster = yield* DevCluster.make({ port: 0, partitions: 4 })
  const Kafka = KafkaJs.layer({ brokers: cluster.brokers, clientId: "deimos-demo", logLevel: "nothing" })
  const services = yield* Layer.build(Layer.mergeAll(
    url === undefined ? Database.layerPglite() : Database.layer({ url: Redacted.make(url), max: 10 }),
    Kafka,
    KafkaProducerBackend.layer().pipe(Layer.provide(Kafka)),
    AvroBackend.layerSchemaRegistry({ url: cluster.registryUrl }),
    DeimosConfig.layer()
  ))

  return yield* Effect.gen(function*() {
    // a clean slate on Postgres (PGlite starts empty)
    if (url !== undefined) yield* Database.execute(sql.raw(`drop schema if exists ${schema} cascade`))
    yield* Migrations.run(
      [
        ...appTables,
        ...Outbox.migrations({ schema }),
        ...CheckpointTables.migrations({ schema }),
        ...Poller.migrations({ schema })
      ],
      { table: `${schema}.deimos_migrations` }
    )

    const progressLine = yield* Effect.forkScoped(progress(started))
    yield* Layer.build(Layer.mergeAll(Consumers.layer([copies, audit, gadgetWatch]), gadgetPoller))
    yield* Effect.forkScoped(OutboxRelay.run({ schema, pollInterval: "100 millis" }))

    const [published] = yield* Effect.all([widgetService, gadgetWriter], { concurrency: 2 })
    yield* waitFor("the sink to match the source", (c) => c.pending === 0 && c.mismatched === 0)
    yield* waitFor("the poison widget's failure", (c) => c.failures === 1 && c.events === published - 1)

    // the fix ships; the operator retries the failure (the console's Retry button does the same over HTTP)
    handler.fixed = true
    const [failure] = yield* Database.execute(sql.raw(`select id from ${schema}.checkpoint_failures`))
    const retried = yield* audit.retryFailure(String(failure.id))
    yield* waitFor("every gadget polled", (c) => c.gadgetsPolled === gadgetCount)
    yield* Fiber.interrupt(progressLine)
    const final = yield* counts
    if (process.stdout.isTTY === true) process.stdout.write("\n")

    const checks: ReadonlyArray<readonly [string, boolean]> = [
      [
        `widget_copies matches widgets (${final.copies} rows, ${final.mismatched} differ)`,
        final.copies === widgetCount && final.mismatched === 0
      ],
      [`the outbox is drained (${final.pending} pending)`, final.pending === 0],
      [`one event per message (${final.events} of ${published})`, final.events === published],
      [
        `the poison widget's failure was retried (${
          retried.acknowledged ? "acknowledged" : "not"
        }; ${final.failures} left)`,
        retried.acknowledged && final.failures === 0
      ],
      [
        `every gadget was polled and published (${final.gadgetsPolled} of ${gadgetCount})`,
        final.gadgetsPolled === gadgetCount
      ]
    ]
    const seconds = (Date.now() - started) / 1000
    console.log(
      `\nSummary: ${published} widget messages and ${gadgetCount} gadgets through the pipeline in ${
        seconds.toFixed(1)
      } s (start-up included):`
    )
    for (const [text, ok] of checks) console.log(`  ${ok ? "ok  " : "FAIL"} ${text}`)
    const failed = checks.filter(([, ok]) => !ok).length
    if (failed > 0) return yield* Effect.fail(new Error(`${failed} check(s) failed`))
    console.log("All checks passed.")
  }).pipe(Effect.provide(services))
}).pipe(Effect.scoped)

// warnings and errors only (the poison widget's failure is one): the progress line tells the rest
program.pipe(Logger.withMinimumLogLevel(LogLevel.Warning), NodeRuntime.runMain)
