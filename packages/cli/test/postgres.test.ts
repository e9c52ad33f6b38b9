// migrate and relay against the test Postgres (a schema of this file's own, dropped at the end) and the dev broker.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { DeimosConfig, JsonBackend, Producer, SchemaRef } from "@deimos/core"
import { KafkaDriver, KafkaJs } from "@deimos/kafka"
import { Database, Outbox } from "@deimos/sql"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { databaseUrl, eventually, run, runHere, schemaFor, start, waitFor } from "./helpers.js"

const schema = schemaFor("pg")

const tablesIn = (s: string) =>
  Effect.map(
    Database.execute(sql`select table_name from information_schema.tables where table_schema = ${s} order by 1`),
    (rows) => rows.map((r) => String(r.table_name))
  )

const Order = SchemaRef.fromSchema(Schema.Struct({ id: Schema.String, n: Schema.Number }), { name: "Order" })

const Test = Layer.scopedContext(Effect.gen(function*() {
  const context = yield* Layer.build(Database.layer({ url: Redacted.make(databaseUrl), max: 4 }))
  yield* Effect.addFinalizer(() =>
    Effect.forEach(
      [schema, `${schema}_print`],
      (s) => Database.execute(sql.raw(`drop schema if exists "${s}" cascade`))
    )
      .pipe(Effect.provide(context), Effect.ignore)
  )
  return context
}))

describe("deimos migrate and relay", () => {
  layer(Test, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("migrate --print writes the SQL and applies nothing", () =>
      Effect.gen(function*() {
        const { code, stdout } = yield* run(["migrate", "--print", "--schema", `${schema}_print`, "--prefix", "app_"])
        expect(code).toBe(0)
        expect(stdout).toContain(`create table if not exists "${schema}_print"."app_kafka_messages"`)
        expect(stdout).toContain("-- deimos migration set: outbox")
        expect(stdout).toContain(`create table if not exists "${schema}_print"."app_checkpoint_failures"`)
        expect(stdout).toContain(`create table if not exists "${schema}_print"."app_poll_info"`)
        expect(yield* tablesIn(`${schema}_print`)).toEqual([])
        // without --schema each set is placed by its own variables; --set picks
        const own = yield* runHere(["migrate", "--print", "--set", "checkpoint", "--set", "outbox"], {
          OUTBOX_SCHEMA: "shop",
          CHECKPOINT_SCHEMA: "audit",
          CHECKPOINT_TABLE_PREFIX: "x_"
        })
        expect(own.code).toBe(0)
        expect(own.stdout).toContain(`create table if not exists "shop"."kafka_messages"`)
        expect(own.stdout).toContain(`create table if not exists "audit"."x_checkpoint_events"`)
        expect(own.stdout).not.toContain("poll_info")
      }))

    it.effect("migrate applies the sets once, into --schema, recorded there", () =>
      Effect.gen(function*() {
        const first = yield* run(["migrate", "--schema", schema], { DATABASE_URL: databaseUrl })
        expect(first.stderr).toBe("")
        expect(first.code).toBe(0)
        expect(first.stdout).toContain(`Applied ${schema}.outbox_1`)
        expect(yield* tablesIn(schema)).toEqual([
          "checkpoint_events",
          "checkpoint_failures",
          "deimos_migrations",
          "kafka_messages",
          "kafka_relays",
          "kafka_topic_info",
          "poll_info"
        ])
        const again = yield* runHere(["migrate", "--schema", schema, "--database-url", databaseUrl])
        expect(again.code).toBe(0)
        expect(again.stdout).toContain("Nothing to apply.")
      }))

    it.effect("a database out of reach fails with exit 1 and says so", () =>
      Effect.gen(function*() {
        const { code, stderr } = yield* runHere(["migrate", "--database-url", "postgres://postgres@127.0.0.1:1/test"], {
          DATABASE_CONNECT_TIMEOUT: "2 seconds"
        })
        expect(code).toBe(1)
        expect(stderr).toContain("migrate failed")
      }))

    it.scoped("relay ships the outbox's rows, shows progress, and exits 0 on SIGTERM", () =>
      Effect.gen(function*() {
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 2 })
        const topic = `cli-relay-${process.pid}`
        yield* Database.transaction(
          Producer.make({ topic, schema: Order, keyConfig: { field: "id" } }).publishList(
            Array.from({ length: 20 }, (_, n) => ({ id: `k${n % 5}`, n }))
          )
        ).pipe(
          Effect.provide(Outbox.layer({ schema })),
          Effect.provide(JsonBackend.layer),
          Effect.provide(DeimosConfig.layer())
        )
        const p = yield* start(["relay", "--schema", schema, "--brokers", broker.broker, "--migrate"], {
          DATABASE_URL: databaseUrl,
          DEIMOS_PROGRESS_INTERVAL: "100 millis",
          OUTBOX_POLL_INTERVAL: "100 millis"
        })
        const kafka = KafkaJs.layer({ brokers: [broker.broker], clientId: "cli-test", logLevel: "nothing" })
        const onTopic = Effect.scoped(Effect.gen(function*() {
          const admin = yield* (yield* KafkaDriver.KafkaDriver).admin
          const offsets = yield* admin.topicOffsets(topic).pipe(Effect.orElseSucceed(() => []))
          return offsets.reduce((n, o) => n + Number(o.high), 0)
        })).pipe(Effect.provide(kafka))
        const count = yield* eventually("the 20 rows on the topic", onTopic, (n) => n >= 20)
        expect(count).toBe(20)
        const left = yield* Database.execute(sql.raw(`select count(*)::int as n from "${schema}".kafka_messages`))
        expect(Number(left[0].n)).toBe(0)
        yield* waitFor("a progress line with the rows shipped", () =>
          /relay: 20 rows shipped .*, 0 pending/.test(p.stderr()), p)
        yield* p.signal("SIGTERM")
        expect(yield* p.exited).toBe(0)
        // the leases were given back on the way out
        const held = yield* Database.execute(
          sql.raw(`select count(*)::int as n from "${schema}".kafka_topic_info where locked_by is not null`)
        )
        expect(Number(held[0].n)).toBe(0)
      }))
  })
})
