// The record consumer against real Postgres, through the real decode → handler path (TestConsume, Avro validation):
// message and batch modes, compaction and slices, hooks, the batch transaction, bad input, deadlocks, a killed
// connection.
import type { Consumer } from "@deimos/core"
import { type ConsumerError, Metrics, SchemaRef, Tombstone } from "@deimos/core"
import { Database, RecordConsumer } from "@deimos/sql"
import { TestConsume } from "@deimos/test"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { boolean, customType, doublePrecision, pgSchema, text } from "drizzle-orm/pg-core"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import {
  DatabaseIn,
  resetStatements,
  rowsOf,
  schemaFor,
  statements,
  tablesIn,
  Testing,
  truncate,
  url,
  Widget
} from "./recordFixtures.js"

const schema = schemaFor("record")
const { audit, parts, widgets } = tablesIn(schema)

const messageConsumer = RecordConsumer.make({
  topic: "widgets",
  groupId: "g",
  schema: Widget,
  keyConfig: { field: "id" },
  table: widgets
})

const batchConsumer = <E = never, R = never>(
  options: Partial<RecordConsumer.RecordConsumer.BatchOptions<typeof Widget, { readonly field: "id" }, E, R, never>> =
    {}
) =>
  RecordConsumer.make<typeof Widget, { readonly field: "id" }, E, R>({
    topic: "widgets",
    groupId: "g",
    schema: Widget,
    keyConfig: { field: "id" },
    table: widgets,
    delivery: "inlineBatch",
    ...options
  })

const w = (id: string, price: number, name = `w-${id}`) => ({ id, name, price })

/** The RecordConsumerError a consumer stopped with (the test layer makes handler errors fatal). */
const recordErrorOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return Effect.die(new Error("expected the consumer to fail"))
    const fatal = Option.getOrThrow(Cause.failureOption(exit.cause)) as unknown as ConsumerError.ConsumerFatalError
    expect(fatal._tag).toBe("ConsumerFatalError")
    return Effect.succeed(Option.getOrThrow(Cause.failureOption(fatal.cause)) as RecordConsumer.RecordConsumerError)
  })

const prices = Effect.map(
  rowsOf(schema, "widgets", "id"),
  (rows) => Object.fromEntries(rows.map((r) => [String(r.id), Number(r.price)]))
)

describe("RecordConsumer", () => {
  layer(Layer.mergeAll(DatabaseIn(schema), Testing), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("message mode: upserts by key, keeps created_at, sets updated_at, converts integer timestamps", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        const soldAt = Date.UTC(2024, 0, 2, 3, 4, 5, 678)
        yield* TestConsume.testConsumeMessage(messageConsumer, { ...w("a", 1), sold_at: soldAt, colour: "red" })
        const [first] = yield* Database.use((db) => db.select().from(widgets))
        expect(first).toMatchObject({ id: "a", name: "w-a", price: 1 })
        expect(first.soldAt!.getTime()).toBe(soldAt)
        yield* Effect.sleep("20 millis")
        yield* TestConsume.testConsumeMessage(messageConsumer, w("a", 2, "renamed"))
        const [second] = yield* Database.use((db) => db.select().from(widgets))
        expect(second).toMatchObject({ id: "a", name: "renamed", price: 2 })
        expect(second.createdAt.getTime()).toBe(first.createdAt.getTime())
        expect(second.updatedAt.getTime()).toBeGreaterThan(first.updatedAt.getTime())
        // a field the table does not have (colour) is not written; a field left out (sold_at) is null
        expect(second.soldAt).toBeNull()
      }))

    it.effect("message mode: a tombstone deletes the key's row; a tombstone for a missing row is a no-op", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        yield* TestConsume.testConsumeBatch(messageConsumer, [w("a", 1), w("b", 2)])
        yield* TestConsume.testConsumeMessage(messageConsumer, Tombstone.make("a"))
        expect(yield* prices).toEqual({ b: 2 })
        yield* TestConsume.testConsumeMessage(messageConsumer, Tombstone.make("nope"))
        expect(yield* prices).toEqual({ b: 2 })
      }))

    it.effect("message mode: processMessage may skip a message", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        const consumer = RecordConsumer.make({
          topic: "widgets",
          groupId: "g",
          schema: Widget,
          keyConfig: { field: "id" },
          table: widgets,
          processMessage: (payload) => Tombstone.isTombstone(payload) || payload.price < 100
        })
        yield* TestConsume.testConsumeBatch(consumer, [w("a", 1), w("b", 500), w("c", 3)])
        expect(yield* prices).toEqual({ a: 1, c: 3 })
      }))

    it.effect("batch mode, compacted: the last message per key wins; tombstones in one DELETE, upserts in one INSERT", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        yield* TestConsume.testConsumeBatch(batchConsumer(), [w("x", 9), w("y", 9)])
        yield* resetStatements(schema)
        const saved: Array<ReadonlyArray<RecordConsumer.Row>> = []
        const consumer = batchConsumer({
          postProcessBatch: (result) => Effect.sync(() => void saved.push(result.saved))
        })
        yield* TestConsume.testConsumeBatch(consumer, [
          w("a", 1),
          w("a", 2),
          w("b", 1),
          Tombstone.make("x"),
          w("c", 1),
          Tombstone.make("y"),
          w("c", 3),
          Tombstone.make("b"),
          Tombstone.make("missing")
        ])
        expect(yield* prices).toEqual({ a: 2, c: 3 })
        expect(yield* statements(schema)).toEqual({ INSERT: 1, DELETE: 1 })
        expect(saved).toEqual([[{ id: "a", name: "w-a", price: 2, soldAt: null }, {
          id: "c",
          name: "w-c",
          price: 3,
          soldAt: null
        }]])
      }))

    it.effect("batch mode, not compacted: slices in which each key occurs once (A1,A2,B1,C1,C2,C3 → [A1,B1,C1],[A2,C2],[C3])", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        const seen: Array<string> = []
        const consumer = batchConsumer({
          compacted: false,
          shouldConsume: (record) => (seen.push(`${String(record.id)}${String(record.price)}`), true)
        })
        yield* TestConsume.testConsumeBatch(consumer, [
          w("A", 1),
          w("A", 2),
          w("B", 1),
          w("C", 1),
          w("C", 2),
          w("C", 3)
        ])
        expect(seen).toEqual(["A1", "B1", "C1", "A2", "C2", "C3"])
        expect(yield* prices).toEqual({ A: 2, B: 1, C: 3 })
        expect((yield* statements(schema)).INSERT).toBe(3)
      }))

    it.effect("batch mode: upserts are one statement per maxDbBatchSize rows", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        const payloads = Array.from({ length: 25 }, (_, i) => w(`k${i}`, i))
        yield* TestConsume.testConsumeBatch(batchConsumer({ maxDbBatchSize: 10 }), payloads)
        expect(Object.keys(yield* prices)).toHaveLength(25)
        expect(yield* statements(schema)).toEqual({ INSERT: 3 })
      }))

    it.effect("batch mode: the batch and the hooks' own writes are one transaction", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        const note = (text: string) => Database.use((db) => db.insert(audit).values({ note: text }))
        const failing = batchConsumer({
          preProcess: (messages) => Effect.as(note("pre"), messages),
          postProcessBatch: () => Effect.zipRight(note("post"), Effect.fail(new Error("hook failed")))
        }) as Consumer.Any
        const exit = yield* Effect.exit(TestConsume.testConsumeBatch(failing, [w("a", 1), w("b", 2)]))
        expect(Exit.isFailure(exit)).toBe(true)
        expect(yield* prices).toEqual({})
        expect(yield* rowsOf(schema, "audit")).toEqual([])
        const working = batchConsumer({
          preProcess: (messages) => Effect.as(note("pre"), messages),
          postProcessBatch: ({ saved }) => Effect.asVoid(note(`saved ${saved.length}`))
        })
        yield* TestConsume.testConsumeBatch(working, [w("a", 1), w("b", 2)])
        expect(yield* prices).toEqual({ a: 1, b: 2 })
        expect((yield* rowsOf(schema, "audit")).map((r) => r.note)).toEqual(["pre", "saved 2"])
      }))

    it.effect("batch mode hooks: preProcess, recordAttributes, shouldConsume (rejected reported), deletedQuery", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        yield* TestConsume.testConsumeBatch(batchConsumer(), [w("old", 1, "keep"), w("gone", 1, "drop")])
        let result: RecordConsumer.BatchResult<Widget, string> | undefined
        const consumer = batchConsumer({
          preProcess: (messages) =>
            Effect.succeed(messages.filter((m) => Tombstone.isTombstone(m.payload) || m.payload.id !== "ignored")),
          recordAttributes: (payload, _key, defaults) => ({ ...defaults(), name: payload.name.toUpperCase() }),
          shouldConsume: (record) => Effect.succeed(Number(record.price) < 50),
          // tombstones delete only rows named "drop"
          deletedQuery: (keys) =>
            sql`${widgets.id} in (${sql.join(keys.map((k) => sql`${k.id}`), sql`, `)}) and ${widgets.name} = 'drop'`,
          postProcessBatch: (r) => Effect.sync(() => (result = r))
        })
        yield* TestConsume.testConsumeBatch(consumer, [
          w("a", 1),
          w("expensive", 99),
          w("ignored", 1),
          Tombstone.make("old"),
          Tombstone.make("gone")
        ])
        const rows = yield* rowsOf(schema, "widgets", "id")
        expect(rows.map((r) => [r.id, r.name])).toEqual([["a", "W-A"], ["old", "keep"]])
        expect(result!.rejected.map((r) => r.record.id)).toEqual(["expensive"])
        expect(result!.rejected[0].message.offset).toBe("1")
        expect(result!.saved.map((r) => r.id)).toEqual(["a"])
        expect(result!.deleted).toEqual([{ id: "old" }, { id: "gone" }])
      }))

    it.effect("batch mode: removeRecords replaces the delete, and recordKey maps a key to composite key columns", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        const removed: Array<ReadonlyArray<RecordConsumer.Row>> = []
        const consumer = RecordConsumer.make({
          topic: "parts",
          groupId: "g",
          schema: Widget,
          keyConfig: { field: "id" },
          table: parts,
          delivery: "inlineBatch",
          // key "w1/2" is widget w1, part 2
          recordKey: (key) => ({ widget: key.split("/")[0], n: Number(key.split("/")[1]) }),
          removeRecords: (keys) =>
            Effect.zipRight(
              Effect.sync(() => void removed.push(keys)),
              Database.execute(sql`delete from ${parts} where ${parts.widget} = ${keys[0].widget}`)
            )
        })
        yield* TestConsume.testConsumeBatch(consumer, [
          { id: "w1/1", name: "one", price: 0 },
          { id: "w1/2", name: "two", price: 0 },
          { id: "w2/1", name: "three", price: 0 },
          { id: "w1/1", name: "one again", price: 0 }
        ])
        expect((yield* rowsOf(schema, "parts", "widget, n")).map((r) => [r.widget, r.n, r.name])).toEqual([
          ["w1", 1, "one again"],
          ["w1", 2, "two"],
          ["w2", 1, "three"]
        ])
        yield* TestConsume.testConsumeBatch(consumer, [Tombstone.make("w1/1")])
        expect(removed).toEqual([[{ widget: "w1", n: 1 }]])
        expect((yield* rowsOf(schema, "parts")).map((r) => r.widget)).toEqual(["w2"])
      }))

    it.effect("bad input: an attribute that is not a column, a missing required column, a wrong type name the column", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        const withAttributes = (recordAttributes: (payload: Widget) => RecordConsumer.Row) =>
          RecordConsumer.make({
            topic: "widgets",
            groupId: "g",
            schema: Widget,
            keyConfig: { field: "id" },
            table: widgets,
            recordAttributes
          })
        const extra = yield* recordErrorOf(
          TestConsume.testConsumeMessage(withAttributes((p) => ({ ...p, colour: "red" })), w("a", 1))
        )
        expect(extra).toMatchObject({ reason: "Attributes", column: "colour", key: { id: "a" } })
        expect(extra.message).toContain(`"colour", which is not a column of ${schema}.widgets`)

        const missing = yield* recordErrorOf(
          TestConsume.testConsumeMessage(withAttributes((p) => ({ id: p.id, price: p.price })), w("a", 1))
        )
        expect(missing).toMatchObject({ reason: "Attributes", column: "name" })
        expect(missing.message).toContain(
          `column "name" (text, not null, no default) of ${schema}.widgets has no value`
        )

        const wrongType = yield* recordErrorOf(
          TestConsume.testConsumeMessage(withAttributes((p) => ({ ...p, price: `${p.price} euros` })), w("a", 1))
        )
        expect(wrongType).toMatchObject({ reason: "Attributes", column: "price" })
        expect(wrongType.message).toContain(
          `column "price" (integer) of ${schema}.widgets got "1 euros", which is not a number`
        )

        const fraction = yield* recordErrorOf(
          TestConsume.testConsumeMessage(withAttributes((p) => ({ ...p, price: 1.5 })), w("a", 1))
        )
        expect(fraction.message).toContain(`"price" (integer) of ${schema}.widgets got 1.5, which is not an integer`)
        expect(yield* prices).toEqual({})
      }))

    it.effect("bad input through the default attributes: a schema field of the wrong type, a column no field fills", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        const withSchema = (name: string, fields: ReadonlyArray<unknown>) =>
          RecordConsumer.make({
            topic: "widgets",
            groupId: "g",
            schema: SchemaRef.make<Record<string, unknown>>({
              name,
              namespace: "test.record",
              avro: { type: "record", name, namespace: "test.record", fields }
            }),
            keyConfig: { field: "id" },
            table: widgets
          })
        const wrongType = yield* recordErrorOf(TestConsume.testConsumeMessage(
          withSchema("PricedAsText", [
            { name: "id", type: "string" },
            { name: "name", type: "string" },
            { name: "price", type: "string" }
          ]),
          { id: "a", name: "a", price: "cheap" }
        ))
        expect(wrongType).toMatchObject({ reason: "Attributes", column: "price", key: { id: "a" } })
        expect(wrongType.message).toContain(
          `column "price" (integer) of ${schema}.widgets got "cheap", which is not a number`
        )
        const missing = yield* recordErrorOf(TestConsume.testConsumeMessage(
          withSchema("Nameless", [{ name: "id", type: "string" }, { name: "price", type: "int" }]),
          { id: "b", price: 1 }
        ))
        expect(missing).toMatchObject({ reason: "Attributes", column: "name", key: { id: "b" } })
        expect(yield* prices).toEqual({})
      }))

    it.effect("bad input in a batch: the bad records are reported by key, the rest of the batch is saved", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        const consumer = batchConsumer({
          recordAttributes: (p, _key, defaults) => (p.name === "bad type" ? { ...defaults(), price: "x" } : defaults())
        })
        const error = yield* recordErrorOf(
          TestConsume.testConsumeBatch(consumer, [w("a", 1), w("b", 2, "bad type"), w("c", 3)])
        )
        expect(error.reason).toBe("Rows")
        expect(
          error.failures!.map((f) => [f.key, f.error._tag, (f.error as RecordConsumer.RecordConsumerError).column])
        )
          .toEqual([[{ id: "b" }, "RecordConsumerError", "price"]])
        expect(error.message).toContain("1 of 3 records could not be saved")
        expect(yield* prices).toEqual({ a: 1, c: 3 })
      }))

    it.effect("a key that violates a constraint: the batch falls back to row by row, that key is reported, the rest saved", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        yield* TestConsume.testConsumeBatch(batchConsumer(), [w("d", 4)])
        yield* resetStatements(schema)
        const error = yield* recordErrorOf(
          TestConsume.testConsumeBatch(batchConsumer(), [
            w("a", 1),
            w("b", -5),
            Tombstone.make("d"),
            w("c", 3),
            w("e", -1)
          ])
        )
        expect(error.reason).toBe("Rows")
        expect(error.failures!.map((f) => f.key)).toEqual([{ id: "b" }, { id: "e" }])
        const constraint = error.failures![0].error
        expect(constraint).toMatchObject({
          _tag: "DatabaseError",
          reason: "Constraint",
          constraint: "widgets_price_check"
        })
        expect(yield* prices).toEqual({ a: 1, c: 3 })
      }))

    it.effect("deadlocks are retried (deadlock metric) and both batches end up written", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        yield* TestConsume.testConsumeBatch(batchConsumer(), [w("A", 0), w("B", 0)])
        const before = (yield* Metric.value(Metric.tagged(RecordConsumer.deadlock, "topic", "widgets"))).count
        const firstLocked = yield* Deferred.make<void>()
        const secondLocked = yield* Deferred.make<void>()
        // each batch locks one row first, waits for the other to lock its row, then upserts both rows
        const locking = (mine: string, locked: Deferred.Deferred<void>, other: Deferred.Deferred<void>) =>
          batchConsumer({
            preProcess: (messages) =>
              Effect.gen(function*() {
                yield* Database.execute(sql`set local deadlock_timeout = '50ms'`)
                yield* Database.execute(sql`update ${widgets} set price = price where ${widgets.id} = ${mine}`)
                yield* Deferred.succeed(locked, void 0)
                yield* Deferred.await(other)
                return messages
              })
          })
        yield* Effect.all([
          TestConsume.testConsumeBatch(locking("A", firstLocked, secondLocked), [w("B", 1), w("A", 1)]),
          TestConsume.testConsumeBatch(locking("B", secondLocked, firstLocked), [w("A", 2), w("B", 2)])
        ], { concurrency: 2 })
        const after = (yield* Metric.value(Metric.tagged(RecordConsumer.deadlock, "topic", "widgets"))).count
        expect(after - before).toBeGreaterThanOrEqual(1)
        const final = yield* prices
        // the batch that lost the deadlock ran again after the other committed: its values are the last
        expect([{ A: 1, B: 1 }, { A: 2, B: 2 }]).toContainEqual(final)
      }))

    it.effect("serialization failures are retried (deadlock metric) and both batches end up written", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        yield* TestConsume.testConsumeBatch(batchConsumer(), [w("A", 0), w("B", 0)])
        const before = (yield* Metric.value(Metric.tagged(RecordConsumer.deadlock, "topic", "widgets"))).count
        const firstRead = yield* Deferred.make<void>()
        const secondRead = yield* Deferred.make<void>()
        // write skew under serializable isolation: each batch reads both rows, waits for the other to have read
        // them, then writes one of them; Postgres fails one transaction with 40001
        const skewed = (read: Deferred.Deferred<void>, other: Deferred.Deferred<void>) =>
          batchConsumer({
            preProcess: (messages) =>
              Effect.gen(function*() {
                yield* Database.execute(sql`set transaction isolation level serializable`)
                yield* Database.execute(sql`select sum(price) from ${widgets}`)
                yield* Deferred.succeed(read, void 0)
                yield* Deferred.await(other)
                return messages
              })
          })
        yield* Effect.all([
          TestConsume.testConsumeBatch(skewed(firstRead, secondRead), [w("A", 1)]),
          TestConsume.testConsumeBatch(skewed(secondRead, firstRead), [w("B", 2)])
        ], { concurrency: 2 })
        const after = (yield* Metric.value(Metric.tagged(RecordConsumer.deadlock, "topic", "widgets"))).count
        expect(after - before).toBeGreaterThanOrEqual(1)
        expect(yield* prices).toEqual({ A: 1, B: 2 })
      }))

    it.effect("the connection terminated mid-batch: the batch is retried and the table is as if it had not happened", () =>
      Effect.gen(function*() {
        yield* truncate(schema)
        yield* TestConsume.testConsumeBatch(batchConsumer(), [w("a", 1), w("b", 1)])
        let attempts = 0
        const killer = yield* Effect.provide(Database.Database, Database.layer({ url, max: 1 }))
        const consumer = batchConsumer({
          postProcessBatch: () =>
            Effect.gen(function*() {
              attempts++
              if (attempts > 1) return
              // the rows are written, not committed: the backend is terminated under the transaction
              const [{ pid }] = yield* Database.execute(sql`select pg_backend_pid() as pid`)
              yield* killer.execute(sql`select pg_terminate_backend(${pid}::int)`)
            })
        })
        yield* TestConsume.testConsumeBatch(consumer, [w("a", 2), Tombstone.make("b"), w("c", 3), w("a", 5)])
        expect(attempts).toBeGreaterThanOrEqual(2)
        expect(yield* prices).toEqual({ a: 5, c: 3 })
        const rows = yield* rowsOf(schema, "widgets", "id")
        expect(rows).toHaveLength(2)
      }).pipe(Effect.scoped))

    it.effect("batch upserts carry bytes, booleans, doubles and nulls (one array literal per column)", () =>
      Effect.gen(function*() {
        yield* Database.execute(sql.raw(`create table if not exists "${schema}".blobs (id text primary key,
          data bytea, flag boolean not null, score double precision)`))
        const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({ dataType: () => "bytea" })
        const blobs = pgSchema(schema).table("blobs", {
          id: text("id").primaryKey(),
          data: bytea("data"),
          flag: boolean("flag").notNull(),
          score: doublePrecision("score")
        })
        const consumer = RecordConsumer.make({
          topic: "blobs",
          groupId: "g",
          schema: Widget,
          keyConfig: { field: "id" },
          table: blobs,
          delivery: "inlineBatch",
          recordAttributes: (p) => ({
            data: p.price === 0 ? null : new Uint8Array([0, 92, 34, 255, p.price]),
            flag: p.price > 1,
            score: p.price === 0 ? null : p.price / 3
          })
        })
        yield* TestConsume.testConsumeBatch(consumer, [w("x", 0), w("y", 1), w("z", 7)])
        const rows = yield* Database.execute(
          sql.raw(`select id, encode(data, 'hex') as hex, flag, score from "${schema}".blobs order by id`)
        )
        expect(rows.map((r) => [r.id, r.hex, r.flag, r.score])).toEqual([
          ["x", null, false, null],
          ["y", "005c22ff01", false, 1 / 3],
          ["z", "005c22ff07", true, 7 / 3]
        ])
      }))

    it.effect("the record consumer opts in to tombstones and counts handler metrics like any consumer", () =>
      Effect.gen(function*() {
        expect(batchConsumer().tombstones).toBe(true)
        expect(batchConsumer().delivery).toBe("inlineBatch")
        expect(messageConsumer.delivery).toBe("message")
        const success = Metric.tagged(Metric.tagged(Metrics.handler, "status", "success"), "topic", "widgets")
        const before = (yield* Metric.value(success)).count
        yield* truncate(schema)
        yield* TestConsume.testConsumeBatch(batchConsumer(), [w("a", 1), w("b", 1)])
        expect((yield* Metric.value(success)).count - before).toBe(2)
      }))

    it.effect("a table without the key columns is refused when the consumer is defined", () =>
      Effect.sync(() => {
        expect(() =>
          RecordConsumer.make({
            topic: "t",
            groupId: "g",
            schema: Widget,
            keyConfig: { field: "id" },
            table: audit
          })
        ).toThrow(`has no primary key: give keyColumns`)
        expect(() =>
          RecordConsumer.make({
            topic: "t",
            groupId: "g",
            schema: Widget,
            keyConfig: { field: "id" },
            table: widgets,
            keyColumns: ["nope"]
          })
        ).toThrow(`has no column "nope"`)
      }))
  })
})
