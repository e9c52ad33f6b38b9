// Change capture: every write is recorded by the table's triggers, whoever makes it (drizzle, mass updates and
// deletes, bulk inserts, raw SQL, TRUNCATE), and reaches the outbox once, in order, in one transaction.
import { ChangeCapture, Database, OutboxRelay } from "@deimos/sql"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { DatabaseIn, Kafka, readTopic, schemaFor, waitUntil } from "./outboxFixtures.js"
import { createOrders, Json, migrate, newTopic, orderRecords, ordersTable, outboxed } from "./pollerFixtures.js"

const schema = schemaFor("change_capture")
class Refused extends Data.TaggedError("Refused")<{}> {}

/** A captured orders table of its own: the table, its triggers, its record producer and its capture. */
const captured = (
  name: string,
  options: Partial<ChangeCapture.TableOptions> & Partial<ChangeCapture.Options<never, never>> = {}
) =>
  Effect.gen(function*() {
    yield* createOrders(schema, name)
    yield* migrate(ChangeCapture.migrations({ table: `${schema}.${name}`, schema, ...options }), schema)
    const topic = newTopic(name)
    const records = orderRecords(schema, topic, {}, ordersTable(schema, name))
    const capture = ChangeCapture.make({
      records,
      schema,
      outbox: { schema },
      ...(options.generateDeletionPayload === undefined
        ? {}
        : { generateDeletionPayload: options.generateDeletionPayload }),
      ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize })
    })
    return { table: `"${schema}"."${name}"`, topic, capture, records }
  })

const recorded = (source: string) =>
  Effect.map(
    Database.execute(sql`select op, error from ${sql.raw(`"${schema}".deimos_changes`)} where source = ${source}
      order by id`),
    (rows) => rows.map((r) => ({ op: String(r.op), error: r.error === null ? null : String(r.error) }))
  )

describe("ChangeCapture", () => {
  layer(Layer.mergeAll(DatabaseIn(schema), Kafka, Json), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("captures drizzle writes, mass updates and deletes, bulk inserts, raw SQL and TRUNCATE, in order", () =>
      Effect.gen(function*() {
        const { capture, table, topic } = yield* captured("every_write")
        const orders = ordersTable(schema, "every_write")
        yield* Database.use((db) => db.insert(orders).values({ id: 1, customerName: "ann", amount: 1 }))
        // a bulk import and a mass update in raw SQL
        yield* Database.execute(sql.raw(`insert into ${table} (id, customer_name, amount)
          select n, 'bulk', n from generate_series(2, 4) n`))
        yield* Database.execute(sql.raw(`update ${table} set amount = amount * 10 where id >= 3`))
        // a mass delete, then a TRUNCATE of what is left
        yield* Database.execute(sql.raw(`delete from ${table} where id = 2`))
        yield* Database.execute(sql.raw(`truncate ${table}`))
        expect(yield* capture.drain).toBe(10)
        const sent = yield* outboxed(schema, topic)
        expect(sent.map((m) => [m.key, m.value])).toEqual([
          ["{\"id\":1}", { id: 1, customerName: "ann", amount: 1 }],
          ["{\"id\":2}", { id: 2, customerName: "bulk", amount: 2 }],
          ["{\"id\":3}", { id: 3, customerName: "bulk", amount: 3 }],
          ["{\"id\":4}", { id: 4, customerName: "bulk", amount: 4 }],
          ["{\"id\":3}", { id: 3, customerName: "bulk", amount: 30 }],
          ["{\"id\":4}", { id: 4, customerName: "bulk", amount: 40 }],
          ["{\"id\":2}", null],
          // the truncate: a tombstone of every row that was there
          ["{\"id\":1}", null],
          ["{\"id\":3}", null],
          ["{\"id\":4}", null]
        ])
        // the changes moved: none is left, and draining again publishes nothing
        expect(yield* recorded(`${schema}.every_write`)).toEqual([])
        expect(yield* capture.drain).toBe(0)
      }))

    it.effect("an update is captured only when a watched column other than updated_at changed", () =>
      Effect.gen(function*() {
        const all = yield* captured("watch_all")
        const some = yield* captured("watch_some", { watched: ["amount"] })
        for (const { table } of [all, some]) {
          yield* Database.execute(sql.raw(`insert into ${table} (id, customer_name, amount) values (1, 'ann', 1)`))
          yield* Database.execute(sql.raw(`update ${table} set updated_at = now() + interval '1 minute'`))
          yield* Database.execute(sql.raw(`update ${table} set amount = amount`))
          yield* Database.execute(sql.raw(`update ${table} set note = 'n'`))
          yield* Database.execute(sql.raw(`update ${table} set amount = 2`))
        }
        // every column but updated_at is watched: the note counts
        expect((yield* recorded(`${schema}.watch_all`)).map((c) => c.op)).toEqual(["insert", "update", "update"])
        // only amount is watched
        expect((yield* recorded(`${schema}.watch_some`)).map((c) => c.op)).toEqual(["insert", "update"])
        yield* some.capture.drain
        expect((yield* outboxed(schema, some.topic)).map((m) => m.value?.amount)).toEqual([1, 2])
      }))

    it.effect("a rolled-back write records nothing; drain inside the writer's transaction publishes with it", () =>
      Effect.gen(function*() {
        const { capture, table, topic } = yield* captured("in_transaction")
        const insert = (id: number) =>
          Database.execute(sql.raw(`insert into ${table} (id, customer_name, amount) values (${id}, 'c', ${id})`))
        const failed = yield* Effect.flip(Database.transaction(
          Effect.zipRight(Effect.zipRight(insert(1), capture.drain), new Refused())
        ))
        expect(failed._tag).toBe("Refused")
        expect(yield* recorded(`${schema}.in_transaction`)).toEqual([])
        expect(yield* outboxed(schema, topic)).toEqual([])
        const inside = yield* Database.transaction(Effect.zipRight(insert(2), capture.drain))
        expect(inside).toBe(1)
        expect((yield* outboxed(schema, topic)).map((m) => m.value?.id)).toEqual([2])
        expect(yield* recorded(`${schema}.in_transaction`)).toEqual([])
      }))

    it.effect("deletes send generateDeletionPayload's payload when given", () =>
      Effect.gen(function*() {
        const { capture, table, topic } = yield* captured("deletion_payload", {
          generateDeletionPayload: ((row: { id: number; customerName: string }) => ({
            id: row.id,
            customerName: `deleted ${row.customerName}`,
            amount: 0
          })) as never
        })
        yield* Database.execute(sql.raw(`insert into ${table} (id, customer_name, amount) values (7, 'gus', 7)`))
        yield* Database.execute(sql.raw(`delete from ${table}`))
        yield* capture.drain
        expect((yield* outboxed(schema, topic)).map((m) => m.value)).toEqual([
          { id: 7, customerName: "gus", amount: 7 },
          { id: 7, customerName: "deleted gus", amount: 0 }
        ])
      }))

    it.effect("a change the schema refuses stays recorded with its error and is counted; the rest is published", () =>
      Effect.gen(function*() {
        const { capture, table, topic } = yield* captured("refused")
        const before = (yield* Metric.value(Metric.tagged(ChangeCapture.invalid, "source", `${schema}.refused`))).count
        yield* Database.execute(sql.raw(`insert into ${table} (id, customer_name, amount)
          values (1, 'a', 1), (2, 'negative', -1), (3, 'c', 3)`))
        expect(yield* capture.drain).toBe(3)
        expect((yield* outboxed(schema, topic)).map((m) => m.value?.id)).toEqual([1, 3])
        const left = yield* recorded(`${schema}.refused`)
        expect(left).toHaveLength(1)
        expect(left[0].error).toContain("amount")
        const after = (yield* Metric.value(Metric.tagged(ChangeCapture.invalid, "source", `${schema}.refused`))).count
        expect(after - before).toBe(1)
        // set aside: draining again does not try it
        expect(yield* capture.drain).toBe(0)
      }))

    it.effect("two captures draining at once publish every change once, in order", () =>
      Effect.gen(function*() {
        const { capture, table, topic } = yield* captured("two_drainers", { batchSize: 20 })
        yield* Database.execute(sql.raw(`insert into ${table} (id, customer_name, amount)
          select n, 'c', n from generate_series(1, 300) n`))
        // each drains until it finds nothing left (the other may hold the source meanwhile: then it answers 0)
        const drainer = Effect.repeat(capture.drain, { until: () => false, times: 30 })
        yield* Effect.all([drainer, drainer], { concurrency: 2 })
        const ids = (yield* outboxed(schema, topic)).map((m) => m.value?.id)
        expect(ids).toEqual(Array.from({ length: 300 }, (_, i) => i + 1))
      }))

    it.effect("run publishes at the triggers' notification; the relay ships it to Kafka", () =>
      Effect.gen(function*() {
        const { capture, table, topic } = yield* captured("to_kafka")
        const running = yield* Effect.fork(capture.run)
        const relay = yield* Effect.fork(OutboxRelay.run({ schema, pollInterval: "200 millis" }))
        yield* Database.execute(sql.raw(`insert into ${table} (id, customer_name, amount)
          select n, 'k', n from generate_series(1, 50) n`))
        yield* Database.execute(sql.raw(`delete from ${table} where id <= 10`))
        const sent = yield* readTopic(topic, 60)
        yield* waitUntil(Effect.map(recorded(`${schema}.to_kafka`), (left) => left.length === 0))
        yield* Fiber.interrupt(running)
        yield* Fiber.interrupt(relay)
        expect(sent.filter((m) => m.value === null)).toHaveLength(10)
        expect(sent.filter((m) => m.value !== null)).toHaveLength(50)
      }))
  })
})
