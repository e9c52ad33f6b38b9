// consume and poll: a module's consumers and pollers run as subprocesses (TypeScript fixtures through tsx) against
// the dev broker and the test Postgres (a schema of this file's own, dropped at the end).
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { DeimosConfig, JsonBackend, Producer, SchemaRef } from "@deimos/core"
import { KafkaDriver, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { Database } from "@deimos/sql"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as path from "node:path"
import { databaseUrl, eventually, root, run, runHere, schemaFor, start, tsx, waitFor } from "./helpers.js"

const schema = schemaFor("modules")
const fixture = (name: string) => path.join(root, "test", "fixtures", name)

const Test = Layer.scopedContext(Effect.gen(function*() {
  const context = yield* Layer.build(Database.layer({ url: Redacted.make(databaseUrl), max: 4 }))
  yield* Effect.addFinalizer(() =>
    Database.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).pipe(Effect.provide(context), Effect.ignore)
  )
  return context
}))

const Order = SchemaRef.fromSchema(Schema.Struct({ id: Schema.String, n: Schema.Number }), { name: "Order" })

const count = (table: string, where = "true") =>
  Effect.map(
    Database.execute(sql.raw(`select count(*)::int as n from "${schema}".${table} where ${where}`)),
    (rows) => Number(rows[0].n)
  )

/** The driver of the broker, for the test's own reads. */
const kafkaOf = (broker: { readonly broker: string }) =>
  KafkaJs.layer({ brokers: [broker.broker], clientId: "cli-test", logLevel: "nothing" })

const onTopic = (broker: { readonly broker: string }, topic: string) =>
  Effect.scoped(Effect.gen(function*() {
    const admin = yield* (yield* KafkaDriver.KafkaDriver).admin
    const offsets = yield* admin.topicOffsets(topic).pipe(Effect.orElseSucceed(() => []))
    return offsets.reduce((n, o) => n + Number(o.high), 0)
  })).pipe(Effect.provide(kafkaOf(broker)))

describe("deimos consume and poll", () => {
  layer(Test, { timeout: 90_000, excludeTestServices: true })((it) => {
    it.scoped("consume runs the module's consumers with its layer and a Database; SIGTERM commits and exits 0", () =>
      Effect.gen(function*() {
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 2 })
        const topic = `cli-consume-${process.pid}`
        const migrated = yield* run(["migrate", "--set", "checkpoint", "--schema", schema], {
          DATABASE_URL: databaseUrl
        })
        expect(migrated.code).toBe(0)
        expect(migrated.stdout).toContain(`Applied ${schema}.checkpoint_1`)
        yield* Database.execute(sql.raw(`create table "${schema}".seen (id text, n int, label text)`))
        yield* Producer.make({ topic, schema: Order, keyConfig: { field: "id" } }).publishList(
          Array.from({ length: 6 }, (_, n) => ({ id: `o${n}`, n }))
        ).pipe(
          Effect.provide(KafkaProducerBackend.layer()),
          Effect.provide(kafkaOf(broker)),
          Effect.provide(Layer.merge(JsonBackend.layer, DeimosConfig.layer()))
        )
        const p = yield* start(
          [
            "consume",
            "test/fixtures/consumers.ts",
            "--brokers",
            broker.broker,
            "--database-url",
            databaseUrl,
            "--lag-interval",
            "200 millis"
          ],
          { FIXTURE_TOPIC: topic, FIXTURE_SCHEMA: schema, DEIMOS_PROGRESS_INTERVAL: "100 millis" },
          tsx
        )
        // the plain consumer's handler got the module layer's service and wrote through the Database
        expect(yield* eventually("the 6 rows written by the handler", count("seen"), (n) => n >= 6)).toBe(6)
        expect(yield* count("seen", "label = 'from-layer'")).toBe(6)
        // the checkpoint found among the exports recorded every message
        expect(yield* eventually("the 6 checkpoint events", count("checkpoint_events"), (n) => n >= 6)).toBe(6)
        yield* waitFor(
          "a progress line with both consumers caught up",
          () =>
            p.stderr().split("\n").some((line) =>
              line.startsWith("consume: 12 handled") &&
              line.includes(`${topic}-seen:${topic} 6 handled, lag 0`) &&
              line.includes(`${topic}-audit:${topic} 6 handled, lag 0`)
            ),
          p
        )
        // standard output is the commands' data: the logs went to standard error
        expect(p.stdout()).toBe("")
        yield* p.signal("SIGTERM")
        expect(yield* p.exited).toBe(0)
        const committed = yield* Effect.scoped(Effect.gen(function*() {
          const admin = yield* (yield* KafkaDriver.KafkaDriver).admin
          return yield* admin.committedOffsets(`${topic}-seen`, topic)
        })).pipe(Effect.provide(kafkaOf(broker)))
        expect(committed.reduce((n, c) => n + Math.max(0, Number(c.offset)), 0)).toBe(6)
      }))

    it.effect("consume: a module without consumers, a missing module, a .ts module without tsx, a bad flag: exit 2", () =>
      Effect.gen(function*() {
        const none = yield* run(["consume", "test/fixtures/nothing.mjs", "--brokers", "127.0.0.1:1"], {}, {
          cwd: root
        })
        expect(none.code).toBe(2)
        expect(none.stderr).toContain("test/fixtures/nothing.mjs exports no consumer definitions")
        const loaderless = yield* run(["consume", "test/fixtures/consumers.ts", "--brokers", "127.0.0.1:1"], {}, {
          cwd: root
        })
        expect(loaderless.code).toBe(2)
        expect(loaderless.stderr).toContain("node --import tsx")
        const missing = yield* runHere(["consume", fixture("nope.ts")])
        expect(missing.code).toBe(2)
        expect(missing.stderr).toContain(`Module ${fixture("nope.ts")} not found`)
        const lag = yield* runHere(["consume", fixture("consumers.ts"), "--lag-interval", "soon"], {
          KAFKA_BROKERS: "127.0.0.1:1"
        })
        expect(lag.code).toBe(2)
        expect(lag.stderr).toContain("DEIMOS_LAG_INTERVAL is invalid")
        expect(lag.stderr).toContain("--lag-interval")
        const brokers = yield* runHere(["consume", fixture("consumers.ts")])
        expect(brokers.code).toBe(2)
        expect(brokers.stderr).toContain("KAFKA_BROKERS is not set: set KAFKA_BROKERS or pass --brokers")
      }))

    it.scoped("poll runs the module's pollers: the rows reach the topic, progress counts them, SIGTERM exits 0", () =>
      Effect.gen(function*() {
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 1 })
        const topic = `cli-poll-${process.pid}`
        yield* Database.execute(sql.raw(`create schema if not exists "${schema}"`))
        yield* Database.execute(sql.raw(
          `create table "${schema}".gadgets (id bigserial primary key, label text not null,
            updated_at timestamptz not null default now())`
        ))
        yield* Database.execute(sql.raw(
          `insert into "${schema}".gadgets (label) select 'g' || i from generate_series(1, 7) i`
        ))
        const p = yield* start(
          ["poll", "test/fixtures/pollers.ts", "--migrate", "--brokers", broker.broker, "--database-url", databaseUrl],
          { FIXTURE_TOPIC: topic, FIXTURE_SCHEMA: schema, DEIMOS_PROGRESS_INTERVAL: "100 millis" },
          tsx
        )
        expect(yield* eventually("the 7 rows on the topic", onTopic(broker, topic), (n) => n >= 7)).toBe(7)
        yield* waitFor(
          "a progress line with the rows published",
          () => new RegExp(`poll: 7 rows published .*; ${topic}-gadgets 7 published`).test(p.stderr()),
          p
        )
        yield* p.signal("SIGTERM")
        expect(yield* p.exited).toBe(0)
        // the cursor was saved and the lease given back
        expect(yield* count("poll_info", `producer = '${topic}-gadgets' and last_sent_id = 7 and locked_by is null`))
          .toBe(1)
      }))

    it.effect("poll: pollers that are not Poller.Options, missing configuration: exit 2", () =>
      Effect.gen(function*() {
        const broken = yield* run(["poll", "test/fixtures/nothing.mjs"], {}, { cwd: root })
        expect(broken.code).toBe(2)
        expect(broken.stderr).toContain("pollers[0] of test/fixtures/nothing.mjs needs producers")
        const none = yield* runHere(["poll", fixture("consumers.ts")])
        expect(none.code).toBe(2)
        expect(none.stderr).toContain("exports no pollers")
        const config = yield* runHere(["poll", fixture("pollers.ts")])
        expect(config.code).toBe(2)
        expect(config.stderr).toContain("DATABASE_URL is not set: set DATABASE_URL or pass --database-url")
        expect(config.stderr).toContain("KAFKA_BROKERS is not set: set KAFKA_BROKERS or pass --brokers")
      }))
  })
})
