// Shared by the record consumer tests: a Postgres schema of the test file's own with the tables it needs, the
// test layer with the Avro validation backend, and readers of the tables.
import { AvroBackend } from "@deimos/avro"
import { SchemaRef } from "@deimos/core"
import { Database } from "@deimos/sql"
import { TestLayer } from "@deimos/test"
import { sql } from "drizzle-orm"
import { integer, pgSchema, primaryKey, text, timestamp } from "drizzle-orm/pg-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { url } from "./outboxFixtures.js"

export { schemaFor, url, waitUntil } from "./outboxFixtures.js"

/** The Avro schema of the tests' payloads: what `avroLocal` hands a consumer (timestamps as integers). */
export const widgetAvro = {
  type: "record",
  name: "Widget",
  namespace: "test.record",
  fields: [
    { name: "id", type: "string" },
    { name: "name", type: "string" },
    { name: "price", type: "int" },
    { name: "sold_at", type: ["null", { type: "long", logicalType: "timestamp-millis" }], default: null },
    { name: "colour", type: "string", default: "none" }
  ]
} as const

export interface Widget {
  readonly id: string
  readonly name: string
  readonly price: number
  readonly sold_at?: number | null
  readonly colour?: string
}

export const Widget = SchemaRef.make<Widget>({ name: "Widget", namespace: "test.record", avro: widgetAvro })

/** The drizzle tables of a schema: `widgets` (keyed by id, with a check on price), `parts` (composite key). */
export const tablesIn = (schema: string) => {
  const s = pgSchema(schema)
  return {
    widgets: s.table("widgets", {
      id: text("id").primaryKey(),
      name: text("name").notNull(),
      price: integer("price"),
      soldAt: timestamp("sold_at", { withTimezone: true, precision: 3 }),
      createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
      updatedAt: timestamp("updated_at", { withTimezone: true }).notNull()
    }),
    parts: s.table("parts", {
      widget: text("widget").notNull(),
      n: integer("n").notNull(),
      name: text("name").notNull()
    }, (t) => [primaryKey({ columns: [t.widget, t.n] })]),
    audit: s.table("audit", { note: text("note").notNull() })
  }
}

const ddl = (schema: string) => [
  `create schema "${schema}"`,
  `create table "${schema}".widgets (id text primary key, name text not null, price integer check (price >= 0),
     sold_at timestamptz(3), created_at timestamptz not null, updated_at timestamptz not null)`,
  `create table "${schema}".parts (widget text not null, n integer not null, name text not null, primary key (widget, n))`,
  `create table "${schema}".audit (note text not null)`,
  // every INSERT and DELETE statement on widgets, counted (a statement-level trigger)
  `create table "${schema}".statements (op text not null)`,
  `create function "${schema}".count_statement() returns trigger language plpgsql as $$
     begin insert into "${schema}".statements values (tg_op); return null; end $$`,
  `create trigger count_statements after insert or delete on "${schema}".widgets
     for each statement execute function "${schema}".count_statement()`
]

/** The database with the tables in `schema` (dropped when the layer closes). */
export const DatabaseIn = (schema: string, options: Partial<Database.Options> = {}) =>
  Layer.scopedContext(Effect.gen(function*() {
    const context = yield* Layer.build(Database.layer({ url, max: 6, ...options }))
    for (const statement of ddl(schema)) yield* Database.execute(sql.raw(statement)).pipe(Effect.provide(context))
    yield* Effect.addFinalizer(() =>
      Database.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).pipe(
        Effect.provide(context),
        Effect.ignore
      )
    )
    return context
  }))

/** The unit-test layer (handler errors surface as `ConsumerFatalError`) with Avro validation. */
export const Testing = TestLayer.make({ schemaBackend: AvroBackend.layerValidation() })

/** The rows of a table of the schema, ordered by `order`. */
export const rowsOf = (schema: string, table: string, order = "1") =>
  Database.execute(sql.raw(`select * from "${schema}"."${table}" order by ${order}`))

/** The statements counted on widgets since the last `resetStatements`. */
export const statements = (schema: string) =>
  Effect.map(
    Database.execute(sql.raw(`select op, count(*)::int as n from "${schema}".statements group by op`)),
    (rows) => Object.fromEntries(rows.map((r) => [String(r.op), Number(r.n)])) as Record<string, number>
  )

export const resetStatements = (schema: string) => Database.execute(sql.raw(`truncate "${schema}".statements`))

export const truncate = (schema: string) =>
  Database.execute(
    sql.raw(`truncate "${schema}".widgets, "${schema}".parts, "${schema}".audit, "${schema}".statements`)
  )
