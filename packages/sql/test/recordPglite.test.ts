// The record consumer on PGlite (Postgres in the process): the same batch path (unnest upserts, deletes, the
// row-by-row fallback) with no server.
import { Tombstone } from "@deimos/core"
import { Database, RecordConsumer } from "@deimos/sql"
import { TestConsume } from "@deimos/test"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { integer, pgTable, text, timestamp } from "drizzle-orm/pg-core"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { Testing, Widget } from "./recordFixtures.js"

const widgets = pgTable("widgets", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  price: integer("price"),
  soldAt: timestamp("sold_at", { withTimezone: true, precision: 3 }),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull()
})

const Pglite = Layer.tap(
  Database.layerPglite(),
  (context) =>
    Database.execute(sql.raw(`create table widgets (id text primary key, name text not null,
    price integer check (price >= 0), sold_at timestamptz(3), created_at timestamptz not null,
    updated_at timestamptz not null)`)).pipe(Effect.provide(context))
)

describe("RecordConsumer on PGlite", () => {
  layer(Layer.mergeAll(Pglite, Testing), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("a batch is upserted, tombstones delete, a refused key is reported and the rest saved", () =>
      Effect.gen(function*() {
        const consumer = RecordConsumer.make({
          topic: "widgets",
          groupId: "g",
          schema: Widget,
          keyConfig: { field: "id" },
          table: widgets,
          delivery: "inlineBatch"
        })
        const soldAt = Date.UTC(2024, 4, 5, 6, 7, 8, 9)
        yield* TestConsume.testConsumeBatch(consumer, [
          { id: "a", name: "a \"quoted\", {x}", price: 1, sold_at: soldAt },
          { id: "b", name: "b", price: 2 },
          { id: "c", name: "c", price: 3 }
        ])
        const exit = yield* Effect.exit(
          TestConsume.testConsumeBatch(consumer, [
            { id: "a", name: "a2", price: 10 },
            { id: "d", name: "d", price: -1 },
            { id: "b", name: "", price: 0 },
            Tombstone.make("c")
          ])
        )
        expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain(`"failures":[{"key":{"id":"d"}`)
        yield* TestConsume.testConsumeMessage(consumer, { id: "e", name: "e", price: 5 })
        const rows = yield* Database.use((db) => db.select().from(widgets).orderBy(widgets.id))
        expect(rows.map((r) => [r.id, r.name, r.price])).toEqual([["a", "a2", 10], ["b", "", 0], ["e", "e", 5]])
      }))

    it.effect("the first batch's values, exactly", () =>
      Effect.gen(function*() {
        const consumer = RecordConsumer.make({
          topic: "widgets",
          groupId: "g",
          schema: Widget,
          keyConfig: { field: "id" },
          table: widgets,
          delivery: "inlineBatch"
        })
        const soldAt = Date.UTC(2024, 4, 5, 6, 7, 8, 9)
        yield* TestConsume.testConsumeBatch(consumer, [
          { id: "q1", name: "a \"quoted\", {x} \\ NULL", price: 1, sold_at: soldAt },
          { id: "q2", name: "NULL", price: 2 }
        ])
        const rows = yield* Database.use((db) => db.select().from(widgets).orderBy(widgets.id))
        const q = rows.filter((r) => r.id.startsWith("q"))
        expect(q.map((r) => [r.name, r.soldAt?.getTime() ?? null])).toEqual([
          ["a \"quoted\", {x} \\ NULL", soldAt],
          ["NULL", null]
        ])
      }))
  })
})
