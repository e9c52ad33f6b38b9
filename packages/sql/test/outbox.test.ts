import { Producer, SchemaRef } from "@deimos/core"
import { Database, Migrations, Outbox, OutboxRelay } from "@deimos/sql"
import { ProducerBackendSuite } from "@deimos/test"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { DatabaseIn, Kafka, pending, proxy, readTopic, schemaFor, waitUntil } from "./outboxFixtures.js"

const schema = schemaFor("outbox")
const Order = SchemaRef.fromSchema(Schema.Struct({ id: Schema.String, n: Schema.Number }), {
  name: "Order",
  namespace: "test"
})
class Refused extends Data.TaggedError("Refused")<{}> {}

const Env = Layer.mergeAll(DatabaseIn(schema), Kafka)
const OutboxBackend = Outbox.layer({ schema })

describe("the transactional outbox", () => {
  layer(Env, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a rollback sends nothing; a commit sends everything, in order per key", () =>
      Effect.gen(function*() {
        const topic = `orders-${Math.random().toString(36).slice(2, 8)}`
        const orders = Producer.make({ topic, schema: Order, keyConfig: { field: "id" } })
        const rolledBack = yield* Effect.flip(
          Database.transaction(Effect.gen(function*() {
            yield* orders.publishList([{ id: "a", n: -1 }, { id: "b", n: -1 }])
            return yield* new Refused()
          }))
        )
        expect(rolledBack._tag).toBe("Refused")
        expect(yield* pending(schema, topic)).toBe(0)
        yield* Database.transaction(
          orders.publishList(Array.from({ length: 30 }, (_, n) => ({ id: ["a", "b", "c"][n % 3], n })))
        )
        expect(yield* pending(schema, topic)).toBe(30)
        const relay = yield* Effect.fork(OutboxRelay.run({ schema, pollInterval: "200 millis" }))
        yield* waitUntil(Effect.map(pending(schema, topic), (n) => n === 0))
        yield* Fiber.interrupt(relay)
        const sent = yield* readTopic(topic, 30)
        expect(sent).toHaveLength(30)
        for (const key of ["a", "b", "c"]) {
          const ns = sent.filter((m) => Buffer.from(m.key!).toString() === JSON.stringify(key)).map((m) =>
            JSON.parse(Buffer.from(m.value!).toString()).n
          )
          expect(ns).toEqual([...ns].sort((x, y) => x - y))
          expect(ns).toHaveLength(10)
        }
      }).pipe(Effect.provide(OutboxBackend)))
  })
})

// the outbox as a ProducerBackend: what it delivers is what its table holds, in id order
const suiteSchema = schemaFor("outbox_suite")
ProducerBackendSuite.suite("outbox", {
  layer: Outbox.layer({ schema: suiteSchema }).pipe(Layer.provideMerge(DatabaseIn(suiteSchema))),
  topic: (name) => Effect.succeed(`${name}-${Math.random().toString(36).slice(2, 8)}`),
  read: (topic) =>
    Effect.map(
      Database.execute(sql`select key, message, headers from ${sql.raw(`"${suiteSchema}".kafka_messages`)}
        where topic = ${topic} order by id`),
      (rows) =>
        rows.map((row) => ({
          key: row.key === null ? null : new Uint8Array(row.key as Uint8Array),
          value: row.message === null ? null : new Uint8Array(row.message as Uint8Array),
          headers: Object.fromEntries(
            Object.entries((row.headers ?? {}) as Record<string, Outbox.StoredHeader>).map((
              [name, value]
            ) => [name, typeof value === "string" ? value : Buffer.from(value.base64, "base64")])
          )
        }))
    ),
  // built through a proxy that is then cut: the pool's connections and any new one fail
  unreachable: Layer.unwrapScoped(Effect.gen(function*() {
    const through = yield* proxy
    const database = yield* Layer.build(
      Database.layer({
        url: Redacted.make(`postgres://postgres@127.0.0.1:${through.port}/test`),
        connectTimeout: "2 seconds",
        closeTimeout: "1 second"
      })
    )
    yield* through.cut
    return Outbox.layer({ schema: suiteSchema }).pipe(Layer.provide(Layer.succeedContext(database)))
  }))
})

// the embedded default: the same outbox and relay on PGlite, in this process
describe("the transactional outbox on PGlite", () => {
  layer(Layer.mergeAll(Database.layerPglite(), Kafka), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("migrates, rolls back, commits and relays in order per key", () =>
      Effect.gen(function*() {
        yield* Migrations.run(Outbox.migrations())
        expect(yield* Migrations.run(Outbox.migrations())).toEqual([])
        const topic = `pglite-${Math.random().toString(36).slice(2, 8)}`
        const orders = Producer.make({ topic, schema: Order, keyConfig: { field: "id" } })
        const relay = yield* Effect.fork(OutboxRelay.run({ pollInterval: "200 millis" }))
        yield* Effect.flip(
          Database.transaction(Effect.zipRight(orders.publishList([{ id: "a", n: -1 }]), new Refused()))
        )
        for (let n = 0; n < 20; n++) yield* Database.transaction(orders.publish({ id: ["a", "b"][n % 2], n }))
        const sent = yield* readTopic(topic, 20)
        yield* Fiber.interrupt(relay)
        expect(sent).toHaveLength(20)
        for (const key of ["a", "b"]) {
          const ns = sent.filter((m) => Buffer.from(m.key!).toString() === JSON.stringify(key)).map((m) =>
            JSON.parse(Buffer.from(m.value!).toString()).n
          )
          expect(ns).toEqual(Array.from({ length: 20 }, (_, n) => n).filter((n) => n % 2 === (key === "a" ? 0 : 1)))
        }
        expect(yield* pending("public")).toBe(0)
      }).pipe(Effect.provide(Outbox.layer())))
  })
})
