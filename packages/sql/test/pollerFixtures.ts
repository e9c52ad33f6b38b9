// Shared by the record producer, change capture and poller tests: a table of orders in the test file's schema, its
// producer, and readers of what reached the outbox.
import { DeimosConfig, JsonBackend, Producer, SchemaRef } from "@deimos/core"
import { Database, Migrations, Outbox, RecordProducer } from "@deimos/sql"
import { sql } from "drizzle-orm"
import { bigint, integer, pgSchema, text, timestamp } from "drizzle-orm/pg-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"

/** What an order is published as: three of the table's columns (`note` stays out). */
export const Order = SchemaRef.fromSchema(
  Schema.Struct({ id: Schema.Number, customerName: Schema.String, amount: Schema.Number.pipe(Schema.nonNegative()) }),
  { name: "Order", namespace: "test" }
)

/** The orders table of `schema`, as drizzle sees it. */
export const ordersTable = (schema: string, name = "orders") =>
  pgSchema(schema).table(name, {
    id: bigint("id", { mode: "number" }).primaryKey(),
    customerName: text("customer_name").notNull(),
    amount: integer("amount").notNull(),
    note: text("note"),
    version: integer("version").notNull().default(0),
    publishState: text("publish_state"),
    publishedAt: timestamp("published_at", { withTimezone: true }),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow()
  })

/** Creates the orders table (and `poll_info`, and the outbox) in `schema`. */
export const createOrders = (schema: string, name = "orders") =>
  Database.execute(sql.raw(`create table "${schema}"."${name}" (
    id bigint primary key,
    customer_name text not null,
    amount integer not null,
    note text,
    version integer not null default 0,
    publish_state text,
    published_at timestamptz,
    updated_at timestamptz not null default now()
  )`))

/** The JSON schema backend (it validates) and the core's settings. */
export const Json = Layer.merge(JsonBackend.layer, DeimosConfig.layer())

export const newTopic = (name: string) => `${name}-${Math.random().toString(36).slice(2, 8)}`

/** A record producer of the orders of `schema` on `topic`, keyed by id. */
export const orderRecords = (
  schema: string,
  topic: string,
  options: Partial<RecordProducer.Options<SchemaRef.Type<typeof Order>, number>> = {},
  table = ordersTable(schema)
) =>
  RecordProducer.make({
    producer: Producer.make({ topic, schema: Order, keyConfig: { field: "id" } }),
    table,
    ...options
  })

export interface Stored {
  readonly key: string | null
  readonly value: Record<string, unknown> | null
}

/** What the outbox of `schema` holds for `topic`, in id order, decoded. */
export const outboxed = (schema: string, topic: string) =>
  Effect.map(
    Database.execute(sql`select key, message from ${sql.raw(`"${schema}".kafka_messages`)} where topic = ${topic}
      order by id`),
    (rows): ReadonlyArray<Stored> =>
      rows.map((row) => ({
        key: row.key === null ? null : Buffer.from(row.key as Uint8Array).toString(),
        value: row.message === null ? null : JSON.parse(Buffer.from(row.message as Uint8Array).toString())
      }))
  )

/** The outbox backend of `schema`. */
export const outboxIn = (schema: string) => Outbox.layer({ schema })

export const migrate = (migrations: ReadonlyArray<Migrations.Migration>, schema: string) =>
  Migrations.run(migrations, { table: `${schema}.deimos_migrations` })
