/**
 * The transactional outbox. The outbox producer backend encodes exactly as the Kafka backend does (it is a core
 * `ProducerBackend`: the producer pipeline runs unchanged) and inserts the encoded messages as rows in the ambient
 * transaction of the `Database` service (a transaction of its own when there is none): a rollback sends nothing, a
 * commit sends everything, and `OutboxRelay` ships the rows to Kafka.
 *
 * Each row carries a lane: a hash of its partition key (else its key) modulo {@link lanes}. The relay sends a
 * topic's lane in id order with one worker at a time, so messages with the same partition key keep their order,
 * while the lanes of a topic are shared by every relay worker and process.
 *
 * @since 0.1.0
 */
import { ProducerBackend, ProducerError } from "@deimos/core"
import { sql } from "drizzle-orm"
import {
  bigserial,
  boolean,
  customType,
  index,
  integer,
  jsonb,
  pgSchema,
  pgTable,
  primaryKey,
  text,
  timestamp
} from "drizzle-orm/pg-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Database from "./Database.js"
import type { DatabaseError } from "./DatabaseError.js"
import { laneOf } from "./internal/lanes.js"
import type * as Migrations from "./Migrations.js"
import { channelName, createSchema, type Migration, migrationName, quote, tableName } from "./Migrations.js"

/**
 * The number of lanes of every topic: how many relay workers can send one topic at once. A constant of the
 * outbox's format (every producer must hash keys to the same lanes).
 *
 * @since 0.1.0
 */
export const lanes = 64

/**
 * Where the outbox tables live.
 *
 * @since 0.1.0
 */
export type Naming = Migrations.Naming

const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({ dataType: () => "bytea" })

/** What a header value is stored as: a string, or bytes in base64 (dead letters keep received bytes). */
export type StoredHeader = string | { readonly base64: string }

const tablesOf = (naming: Naming = {}) => {
  const prefix = naming.prefix ?? ""
  // one builder for both (the schema is in the table objects; their types do not name it)
  const table = (naming.schema === undefined ? pgTable : pgSchema(naming.schema).table) as typeof pgTable
  const messages = table(`${prefix}kafka_messages`, {
    id: bigserial("id", { mode: "bigint" }).primaryKey(),
    topic: text("topic").notNull(),
    key: bytea("key"),
    message: bytea("message"),
    partitionKey: text("partition_key"),
    headers: jsonb("headers").$type<Record<string, StoredHeader>>(),
    lane: integer("lane").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow()
  }, (t) => [
    index(`${prefix}kafka_messages_lane_idx`).on(t.topic, t.lane, t.id),
    index(`${prefix}kafka_messages_topic_idx`).on(t.topic, t.id)
  ])
  const topicInfo = table(`${prefix}kafka_topic_info`, {
    topic: text("topic").notNull(),
    lane: integer("lane").notNull(),
    lockedBy: text("locked_by"),
    lockedAt: timestamp("locked_at", { withTimezone: true }),
    error: boolean("error").notNull().default(false),
    retryAt: timestamp("retry_at", { withTimezone: true }),
    retries: integer("retries").notNull().default(0),
    lastProcessedAt: timestamp("last_processed_at", { withTimezone: true })
  }, (t) => [primaryKey({ columns: [t.topic, t.lane] })])
  const relays = table(`${prefix}kafka_relays`, {
    relay: text("relay").primaryKey(),
    workers: integer("workers").notNull(),
    seenAt: timestamp("seen_at", { withTimezone: true }).notNull().defaultNow()
  })
  return { messages, topicInfo, relays }
}

/**
 * The outbox tables as drizzle schemas, to add to a project's own drizzle setup: `kafka_messages` (the pending
 * messages), `kafka_topic_info` (one row per topic and lane: its lease, whether its last attempt failed and when
 * it may be tried again, when it was last processed) and `kafka_relays` (the running relays and their workers, which
 * share the lanes out).
 *
 * @since 0.1.0
 */
export const tables: (naming?: Naming) => {
  readonly messages: ReturnType<typeof tablesOf>["messages"]
  readonly topicInfo: ReturnType<typeof tablesOf>["topicInfo"]
  readonly relays: ReturnType<typeof tablesOf>["relays"]
} = tablesOf

/** Qualified, quoted table names for raw SQL. */
export const namesOf = (naming: Naming = {}) => {
  return {
    messages: tableName(naming, "kafka_messages"),
    topicInfo: tableName(naming, "kafka_topic_info"),
    relays: tableName(naming, "kafka_relays"),
    /** The channel the relay listens on and the backend notifies at commit. */
    channel: channelName(naming, "deimos_outbox")
  }
}

/**
 * The migrations that create the outbox tables.
 *
 * @since 0.1.0
 */
export const migrations = (naming: Naming = {}): ReadonlyArray<Migration> => {
  const names = namesOf(naming)
  const prefix = naming.prefix ?? ""
  return [{
    name: migrationName(naming, "outbox_1"),
    statements: [
      ...createSchema(naming),
      `create table if not exists ${names.messages} (
        id bigserial primary key,
        topic text not null,
        key bytea,
        message bytea check (octet_length(message) <= 10485760),
        partition_key text,
        headers jsonb,
        lane integer not null,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now()
      )`,
      `create index if not exists ${quote(`${prefix}kafka_messages_lane_idx`)} on ${names.messages} (topic, lane, id)`,
      `create index if not exists ${quote(`${prefix}kafka_messages_topic_idx`)} on ${names.messages} (topic, id)`,
      // every row is deleted soon after it is written: vacuum after a fixed number of dead rows, not a fraction
      // of the table, so that the relay's index scans do not wade through the dead rows of a drained backlog
      `alter table ${names.messages} set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000,
        autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 10000)`,
      `create table if not exists ${names.topicInfo} (
        topic text not null,
        lane integer not null,
        locked_by text,
        locked_at timestamptz,
        error boolean not null default false,
        retry_at timestamptz,
        retries integer not null default 0,
        last_processed_at timestamptz,
        primary key (topic, lane)
      )`,
      `create table if not exists ${names.relays} (
        relay text primary key,
        workers integer not null,
        seen_at timestamptz not null default now()
      )`
    ]
  }]
}

/**
 * `db_producer.insert{topic}`: messages inserted into the outbox.
 *
 * @since 0.1.0
 */
export const inserted = Metric.counter("db_producer.insert", { description: "Messages inserted into the outbox" })

const rowsPerStatement = 5000

const storedHeaders = (headers: ProducerBackend.ProducerMessage["headers"]): Record<string, StoredHeader> | null => {
  let out: Record<string, StoredHeader> | null = null
  for (const name in headers) {
    const value = headers[name]
    out ??= {}
    out[name] = typeof value === "string" ? value : { base64: Buffer.from(value).toString("base64") }
  }
  return out
}

/**
 * @since 0.1.0
 */
export interface Options extends Naming {}

/**
 * The outbox producer backend over the `Database` in context: `execute` inserts the messages (a statement per 5,000) in the
 * ambient transaction, or in a transaction of its own, and asks for one notification of the relay at its commit
 * (however many topics and calls the transaction has).
 *
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<ProducerBackend.ProducerBackend.Service, never, Database.Database> =>
  Effect.map(Database.Database, (database) => {
    const { messages } = tablesOf(options)
    const names = namesOf(options)
    const channel = names.channel
    // the lease rows of a topic this process has not written to yet, made with its first rows (a rolled-back first
    // transaction leaves it to the relay's poll to find the lanes)
    const known = new Set<string>()
    const lanesOf = (topic: string) =>
      known.has(topic) ? Effect.void : database.execute(sql`insert into ${sql.raw(names.topicInfo)} (topic, lane)
          select ${topic}, lane from generate_series(0, ${lanes - 1}) as lane on conflict do nothing`).pipe(
        Effect.zipRight(Effect.sync(() => known.add(topic)))
      )
    const rowsOf = (topic: string, batch: ReadonlyArray<ProducerBackend.ProducerMessage>) =>
      batch.map((m) => ({
        topic,
        key: m.key,
        message: m.value,
        partitionKey: m.partitionKey,
        headers: storedHeaders(m.headers),
        lane: laneOf(m.partitionKey, m.key, lanes)
      }))
    // a statement takes at most 65,535 parameters (6 per row): larger lists are inserted in parts, in order
    const insert = (topic: string, batch: ReadonlyArray<ProducerBackend.ProducerMessage>) =>
      Effect.forEach(
        Array.from({ length: Math.ceil(batch.length / rowsPerStatement) }, (_, i) => i * rowsPerStatement),
        (from) =>
          database.use((db) =>
            db.insert(messages).values(
              rowsOf(topic, batch.length <= rowsPerStatement ? batch : batch.slice(from, from + rowsPerStatement))
            )
          ),
        { discard: true }
      ).pipe(Effect.zipRight(lanesOf(topic)), Effect.zipRight(database.notify(channel)))
    return {
      name: "outbox",
      execute: (topic, batch) =>
        batch.length === 0 ?
          Effect.void :
          Effect.flatMap(database.inTransaction, (open) =>
            (open ? insert(topic, batch) : database.transaction(insert(topic, batch))).pipe(
              Effect.zipRight(Metric.incrementBy(Metric.tagged(inserted, "topic", topic), batch.length)),
              Effect.mapError((error: DatabaseError) =>
                new ProducerError.ProducerError({
                  reason: "Send",
                  producer: batch[0].producer,
                  topic,
                  retriable: error.retriable,
                  failedCount: batch.length,
                  message: `Cannot insert ${
                    batch.length === 1 ? "1 message" : `${batch.length} messages`
                  } for topic ${topic} into the outbox: ${error.message}`,
                  cause: error
                })
              )
            ))
    }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<ProducerBackend.ProducerBackend, never, Database.Database> =>
  Layer.effect(ProducerBackend.ProducerBackend, make(options))
