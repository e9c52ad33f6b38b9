// Association writes of the record consumer: child rows written with their records in the batch's transaction,
// replaced per record, pointing to a serial id read back through bulk_import_id or to a natural key; bad child
// rows failing their record only.
import { AvroBackend } from "@deimos/avro"
import { SchemaRef } from "@deimos/core"
import { Database, RecordConsumer } from "@deimos/sql"
import { TestConsume, TestLayer } from "@deimos/test"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { integer, pgSchema, primaryKey, serial, text, timestamp, uuid } from "drizzle-orm/pg-core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { schemaFor, url } from "./recordFixtures.js"

const schema = schemaFor("record_assoc")
const s = pgSchema(schema)
const orders = s.table("orders", {
  id: serial("id").primaryKey(),
  code: text("code").notNull().unique(),
  total: integer("total").notNull(),
  bulkImportId: uuid("bulk_import_id"),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull()
})
const lines = s.table("order_lines", {
  id: serial("id").primaryKey(),
  orderId: integer("order_id").notNull(),
  sku: text("sku").notNull(),
  qty: integer("qty").notNull()
})
const tags = s.table("order_tags", {
  orderCode: text("order_code").notNull(),
  tag: text("tag").notNull(),
  note: text("note")
}, (t) => [primaryKey({ columns: [t.orderCode, t.tag] })])

interface Order {
  readonly code: string
  readonly total: number
  readonly lines: ReadonlyArray<{ readonly sku: string; readonly qty: number }>
  readonly tags: ReadonlyArray<string>
}
const Order = SchemaRef.make<Order>({
  name: "Order",
  namespace: "test.assoc",
  avro: {
    type: "record",
    name: "Order",
    namespace: "test.assoc",
    fields: [
      { name: "code", type: "string" },
      { name: "total", type: "int" },
      {
        name: "lines",
        type: {
          type: "array",
          items: {
            type: "record",
            name: "Line",
            fields: [{ name: "sku", type: "string" }, { name: "qty", type: "int" }]
          }
        }
      },
      { name: "tags", type: { type: "array", items: "string" } }
    ]
  }
})

const customers = s.table("customers", {
  id: serial("id").primaryKey(),
  email: text("email").notNull().unique(),
  name: text("name").notNull()
})
const accounts = s.table("accounts", {
  code: text("code").primaryKey(),
  total: integer("total").notNull(),
  customerId: integer("customer_id").notNull()
})

const Tables = Layer.scopedContext(Effect.gen(function*() {
  const context = yield* Layer.build(Database.layer({ url, max: 4 }))
  const run = (statement: string) => Database.execute(sql.raw(statement)).pipe(Effect.provide(context))
  yield* run(`create schema "${schema}"`)
  yield* run(`create table "${schema}".orders (id serial primary key, code text not null unique, total integer not null,
    bulk_import_id uuid, created_at timestamptz not null, updated_at timestamptz not null)`)
  yield* run(`create table "${schema}".order_lines (id serial primary key,
    order_id integer not null references "${schema}".orders (id) on delete cascade, sku text not null,
    qty integer not null check (qty > 0))`)
  yield* run(`create table "${schema}".order_tags (order_code text not null, tag text not null, note text,
    primary key (order_code, tag))`)
  yield* run(
    `create table "${schema}".customers (id serial primary key, email text not null unique, name text not null)`
  )
  yield* run(`create table "${schema}".accounts (code text primary key, total integer not null,
    customer_id integer not null references "${schema}".customers (id))`)
  yield* Effect.addFinalizer(() => run(`drop schema if exists "${schema}" cascade`).pipe(Effect.ignore))
  return context
}))

const consumer = (delivery: "inlineBatch" | "message" = "inlineBatch") =>
  RecordConsumer.make({
    topic: "orders",
    groupId: "g",
    schema: Order,
    keyConfig: { field: "code" },
    table: orders,
    keyColumns: ["code"],
    delivery,
    recordAttributes: (p) => ({ code: p.code, total: p.total }),
    associations: [
      // points to the serial id, which is read back by bulk_import_id
      { table: lines, foreignKey: "order_id", references: "id", rows: (p) => p.lines },
      // points to the natural key, which the record holds
      { table: tags, foreignKey: "orderCode", references: "code", rows: (p) => p.tags.map((tag) => ({ tag })) }
    ]
  })

const order = (code: string, total: number, items: Array<[string, number]>, tagged: Array<string> = []): Order => ({
  code,
  total,
  lines: items.map(([sku, qty]) => ({ sku, qty })),
  tags: tagged
})

/** Each order's lines (`sku:qty`, by id) and tags, by order code. */
const contents = Effect.gen(function*() {
  const rows = yield* Database.execute(
    sql.raw(`select o.code, coalesce(string_agg(l.sku || ':' || l.qty, ',' order by l.id), '') as lines,
    coalesce((select string_agg(t.tag, ',' order by t.tag) from "${schema}".order_tags t where t.order_code = o.code), '') as tags
    from "${schema}".orders o left join "${schema}".order_lines l on l.order_id = o.id group by o.code, o.id order by o.code`)
  )
  return Object.fromEntries(rows.map((r) => [String(r.code), `${String(r.lines)} | ${String(r.tags)}`]))
})

const truncate = Database.execute(
  sql.raw(`truncate "${schema}".orders, "${schema}".order_lines, "${schema}".order_tags restart identity cascade`)
)

const rowsError = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) throw new Error("expected the batch to fail")
    const fatal = Option.getOrThrow(Cause.failureOption(exit.cause)) as { readonly cause: Cause.Cause<unknown> }
    return Option.getOrThrow(Cause.failureOption(fatal.cause)) as RecordConsumer.RecordConsumerError
  })

describe("RecordConsumer associations", () => {
  layer(Layer.mergeAll(Tables, TestLayer.make({ schemaBackend: AvroBackend.layerValidation() })), {
    timeout: 60_000,
    excludeTestServices: true
  })((it) => {
    it.effect("children are written with their records and replaced by the next version of a record", () =>
      Effect.gen(function*() {
        yield* truncate
        yield* TestConsume.testConsumeBatch(consumer(), [
          order("A", 1, [["a1", 1], ["a2", 2]], ["red", "big"]),
          order("B", 2, [["b1", 1]], ["blue"])
        ])
        expect(yield* contents).toEqual({ A: "a1:1,a2:2 | big,red", B: "b1:1 | blue" })
        // every line points to its order's serial id
        const orphans = yield* Database.execute(sql.raw(`select count(*)::int as n from "${schema}".order_lines l
          join "${schema}".orders o on o.id = l.order_id where l.sku not like lower(o.code) || '%'`))
        expect(orphans[0].n).toBe(0)
        yield* TestConsume.testConsumeBatch(consumer(), [
          order("A", 3, [["a3", 3]], ["red"]),
          order("C", 4, [], [])
        ])
        expect(yield* contents).toEqual({ A: "a3:3 | red", B: "b1:1 | blue", C: " | " })
      }))

    it.effect("message mode writes the children too", () =>
      Effect.gen(function*() {
        yield* truncate
        yield* TestConsume.testConsumeMessage(consumer("message"), order("M", 1, [["m1", 1]], ["x"]))
        yield* TestConsume.testConsumeMessage(consumer("message"), order("M", 1, [["m2", 2], ["m3", 3]], []))
        expect(yield* contents).toEqual({ M: "m2:2,m3:3 | " })
      }))

    it.effect("a child the database refuses fails its record only: the record and its children are not saved", () =>
      Effect.gen(function*() {
        yield* truncate
        const error = yield* rowsError(TestConsume.testConsumeBatch(consumer(), [
          order("A", 1, [["a1", 1]]),
          order("B", 2, [["b1", 0]]),
          order("C", 3, [["c1", 3]])
        ]))
        expect(error.reason).toBe("Rows")
        expect(error.failures!.map((f) => [f.key, f.error._tag, (f.error as { constraint?: string }).constraint]))
          .toEqual([[{ code: "B" }, "DatabaseError", "order_lines_qty_check"]])
        expect(yield* contents).toEqual({ A: "a1:1 | ", C: "c1:3 | " })
      }))

    it.effect("a child row that does not fit its table is reported naming the column", () =>
      Effect.gen(function*() {
        yield* truncate
        const bad = RecordConsumer.make({
          topic: "orders",
          groupId: "g",
          schema: Order,
          keyConfig: { field: "code" },
          table: orders,
          keyColumns: ["code"],
          delivery: "inlineBatch",
          recordAttributes: (p) => ({ code: p.code, total: p.total }),
          associations: [{
            table: lines,
            foreignKey: "order_id",
            references: "id",
            rows: (p) => p.lines.map((l) => (l.sku === "bad" ? { qty: l.qty } : l))
          }]
        })
        const error = yield* rowsError(
          TestConsume.testConsumeBatch(bad, [order("A", 1, [["a1", 1]]), order("B", 2, [["bad", 1]])])
        )
        const failure = error.failures![0]
        expect(failure.key).toEqual({ code: "B" })
        expect(failure.error).toMatchObject({ reason: "Attributes", column: "sku" })
        expect(failure.error.message).toContain(`column "sku" (text, not null, no default) of ${schema}.order_lines`)
        expect(yield* contents).toEqual({ A: "a1:1 | " })
      }))

    it.effect("upserted children (replaceAssociations: false) are kept and updated by their keys", () =>
      Effect.gen(function*() {
        yield* truncate
        const upserting = RecordConsumer.make({
          topic: "orders",
          groupId: "g",
          schema: Order,
          keyConfig: { field: "code" },
          table: orders,
          keyColumns: ["code"],
          delivery: "inlineBatch",
          replaceAssociations: false,
          recordAttributes: (p) => ({ code: p.code, total: p.total }),
          associations: [{
            table: tags,
            foreignKey: "order_code",
            rows: (p) => p.tags.map((tag) => ({ tag, note: `total ${p.total}` }))
          }]
        })
        yield* TestConsume.testConsumeBatch(upserting, [order("A", 1, [], ["red", "big"])])
        yield* TestConsume.testConsumeBatch(upserting, [order("A", 2, [], ["red"])])
        const rows = yield* Database.execute(sql.raw(`select tag, note from "${schema}".order_tags order by tag`))
        expect(rows.map((r) => `${r.tag}: ${r.note}`)).toEqual(["big: total 1", "red: total 2"])
      }))

    it.effect("saveAssociationsFirst: the child is saved first and the record points to its id", () =>
      Effect.gen(function*() {
        const first = RecordConsumer.make({
          topic: "accounts",
          groupId: "g",
          schema: Order,
          keyConfig: { field: "code" },
          table: accounts,
          delivery: "inlineBatch",
          recordAttributes: (p) => ({ code: p.code, total: p.total }),
          saveAssociationsFirst: true,
          associations: [{
            table: customers,
            keyColumns: ["email"],
            foreignKey: "customer_id",
            references: "id",
            // the first tag is the customer's email
            rows: (p) => [{ email: p.tags[0], name: `customer of ${p.code}` }]
          }]
        })
        yield* TestConsume.testConsumeBatch(first, [
          order("A", 1, [], ["ann@x"]),
          order("B", 2, [], ["bob@x"]),
          order("C", 3, [], ["ann@x"])
        ])
        yield* TestConsume.testConsumeMessage(first, order("D", 4, [], ["dee@x"]))
        const rows = yield* Database.execute(sql.raw(`select a.code, c.email, c.name from "${schema}".accounts a
          join "${schema}".customers c on c.id = a.customer_id order by a.code`))
        expect(rows.map((r) => [r.code, r.email, r.name])).toEqual([
          ["A", "ann@x", "customer of C"],
          ["B", "bob@x", "customer of B"],
          ["C", "ann@x", "customer of C"],
          ["D", "dee@x", "customer of D"]
        ])
        const count = yield* Database.execute(sql.raw(`select count(*)::int as n from "${schema}".customers`))
        expect(count[0].n).toBe(3)
      }))

    it.effect("an association naming a column its table lacks is refused when the consumer is defined", () =>
      Effect.sync(() => {
        expect(() =>
          RecordConsumer.make({
            topic: "orders",
            groupId: "g",
            schema: Order,
            keyConfig: { field: "code" },
            table: orders,
            keyColumns: ["code"],
            associations: [{ table: lines, foreignKey: "orders_id", rows: () => [] }]
          })
        ).toThrow(`has no column "orders_id" (its foreignKey)`)
      }))
  })
})
