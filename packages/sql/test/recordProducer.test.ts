// Record producers: rows (drizzle's or raw) to payloads of the schema's fields, refetch, postProcess, and a batch
// with a row the schema refuses.
import { Database, RecordProducer } from "@deimos/sql"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { pgSchema, text } from "drizzle-orm/pg-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DatabaseIn, schemaFor } from "./outboxFixtures.js"
import { createOrders, Json, newTopic, orderRecords, ordersTable, outboxed, outboxIn } from "./pollerFixtures.js"

const schema = schemaFor("record_producer")

describe("RecordProducer", () => {
  layer(Layer.provideMerge(Layer.merge(Json, outboxIn(schema)), DatabaseIn(schema)), {
    timeout: 60_000,
    excludeTestServices: true
  })((it) => {
    it.effect("sends the schema's fields of drizzle rows and of raw rows (columns mapped back), in order", () =>
      Effect.gen(function*() {
        yield* createOrders(schema)
        const topic = newTopic("orders")
        const records = orderRecords(schema, topic)
        yield* Database.execute(sql.raw(`insert into "${schema}".orders (id, customer_name, amount, note)
          values (1, 'ann', 10, 'secret'), (2, 'bob', 20, 'secret')`))
        const drizzleRows = yield* Database.use((db) =>
          db.select().from(ordersTable(schema)).orderBy(ordersTable(schema).id)
        )
        const rawRows = yield* Database.execute(sql.raw(`select * from "${schema}".orders order by id desc`))
        yield* records.sendEvents(drizzleRows)
        yield* records.sendEvents(rawRows)
        const sent = yield* outboxed(schema, topic)
        expect(sent.map((m) => m.value)).toEqual([
          { id: 1, customerName: "ann", amount: 10 },
          { id: 2, customerName: "bob", amount: 20 },
          { id: 2, customerName: "bob", amount: 20 },
          { id: 1, customerName: "ann", amount: 10 }
        ])
        expect(sent.map((m) => m.key)).toEqual([1, 2, 2, 1].map((id) => JSON.stringify({ id })))
      }))

    it.effect("refetch reads the rows again by primary key (a row gone is not sent); postProcess sees what was sent", () =>
      Effect.gen(function*() {
        const table = "refetched"
        yield* createOrders(schema, table)
        const topic = newTopic("refetch")
        const seen: Array<ReadonlyArray<RecordProducer.Row>> = []
        const records = orderRecords(schema, topic, {
          refetch: true,
          generatePayload: (attributes, row) =>
            ({ ...attributes, customerName: `${row.customerName}/${row.note}` }) as never,
          postProcess: (rows) => Effect.sync(() => seen.push(rows))
        }, ordersTable(schema, table))
        yield* Database.execute(sql.raw(`insert into "${schema}".${table} (id, customer_name, amount, note)
          values (1, 'ann', 10, 'x'), (3, 'cy', 30, 'z')`))
        // stale rows: only their keys count
        yield* records.sendEvents([{ id: 3, customerName: "stale", amount: -1 }, { id: 2 }, { id: 1 }])
        expect((yield* outboxed(schema, topic)).map((m) => m.value)).toEqual([
          { id: 3, customerName: "cy/z", amount: 30 },
          { id: 1, customerName: "ann/x", amount: 10 }
        ])
        expect(seen.map((rows) => rows.map((r) => r.id))).toEqual([[3, 1]])
      }))

    it.effect("a row the schema refuses: sendEvents sends nothing; sendEventsSkipping sends the rest and answers it", () =>
      Effect.gen(function*() {
        const topic = newTopic("invalid")
        const records = orderRecords(schema, topic)
        const rows = [
          { id: 1, customer_name: "ann", amount: 1 },
          { id: 2, customer_name: "bad", amount: -5 },
          { id: 3, customer_name: "cy", amount: 3 }
        ]
        const error = yield* Effect.flip(records.sendEvents(rows))
        expect(error._tag).toBe("SchemaError")
        expect(yield* outboxed(schema, topic)).toEqual([])
        const failed = yield* records.sendEventsSkipping(rows, RecordProducer.isSchemaError)
        expect(failed.map((f) => f.row.id)).toEqual([2])
        expect(failed[0].error.message).toContain("amount")
        expect((yield* outboxed(schema, topic)).map((m) => m.value?.id)).toEqual([1, 3])
      }))

    it("a table without a one-column primary key is refused at once, saying what to do", () => {
      const noKey = pgSchema(schema).table("nokey", { name: text("name") })
      expect(() => orderRecords(schema, "t", {}, noKey as never)).toThrow(/no one-column primary key; name one/)
    })
  })
})
