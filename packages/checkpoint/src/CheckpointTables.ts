/**
 * The checkpoint tables, as drizzle schemas and as migrations (applied with `@deimos/sql` `Migrations.run`):
 *
 * - `checkpoint_events`: one row per handled message that the handler acknowledged. A unique index on
 *   `(topic, group_id, checksum)` is what makes consumption idempotent: a message is claimed by inserting its row,
 *   and a second claim of the same key waits for the first transaction and then finds the row there. `checksum`
 *   holds the dedup key (by default the MD5 of the payload). An index on `(event_time desc, created_at desc)` serves
 *   the events API's listing, one on `created_at` the retention sweeper.
 * - `checkpoint_failures`: one row per message given up after its retries, with its payload, metadata and the
 *   error (tag, message, cause chain), until it is retried or deleted.
 *
 * @since 0.1.0
 */
import type * as Migrations from "@deimos/sql/Migrations"
import { createSchema, migrationName, quote, tableName } from "@deimos/sql/Migrations"
import type { Migration } from "@deimos/sql/Migrations"
import { bigserial, index, jsonb, pgSchema, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core"

/**
 * Where the tables live.
 *
 * @since 0.1.0
 */
export type Naming = Migrations.Naming

/**
 * A failure's metadata, as stored: where the message was and what came with it.
 *
 * @since 0.1.0
 */
export interface StoredMetadata {
  readonly consumer: string
  readonly partition: number
  readonly offset: string
  readonly key: unknown
  readonly headers: Readonly<Record<string, string>>
  readonly timestamp: string
  readonly retryCount: number
}

/** The columns an event and a failure both have: which message, and what its handler said it was about. */
const identity = () => ({
  topic: text("topic").notNull(),
  groupId: text("group_id").notNull(),
  checksum: text("checksum").notNull(),
  entityId: text("entity_id"),
  eventTime: timestamp("event_time", { withTimezone: true }),
  eventType: text("event_type"),
  eventVersion: text("event_version"),
  payload: jsonb("payload")
})

const tablesOf = (naming: Naming = {}) => {
  const prefix = naming.prefix ?? ""
  const table = (naming.schema === undefined ? pgTable : pgSchema(naming.schema).table) as typeof pgTable
  const events = table(`${prefix}checkpoint_events`, {
    id: bigserial("id", { mode: "bigint" }).primaryKey(),
    ...identity(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow()
  }, (t) => [
    uniqueIndex(`${prefix}checkpoint_events_key_idx`).on(t.topic, t.groupId, t.checksum),
    index(`${prefix}checkpoint_events_time_idx`).on(t.eventTime.desc(), t.createdAt.desc()),
    index(`${prefix}checkpoint_events_created_idx`).on(t.createdAt)
  ])
  const failures = table(`${prefix}checkpoint_failures`, {
    id: bigserial("id", { mode: "bigint" }).primaryKey(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    ...identity(),
    metadata: jsonb("metadata").$type<StoredMetadata>().notNull(),
    errorClass: text("error_class").notNull(),
    errorMessage: text("error_message").notNull(),
    errorBacktrace: text("error_backtrace").notNull()
  }, (t) => [
    index(`${prefix}checkpoint_failures_created_idx`).on(t.createdAt.desc()),
    index(`${prefix}checkpoint_failures_key_idx`).on(t.topic, t.groupId, t.checksum)
  ])
  return { events, failures }
}

/**
 * The checkpoint tables as drizzle schemas, to query or to add to a project's own drizzle setup.
 *
 * @since 0.1.0
 */
export const tables: (naming?: Naming) => {
  readonly events: ReturnType<typeof tablesOf>["events"]
  readonly failures: ReturnType<typeof tablesOf>["failures"]
} = tablesOf

/**
 * Qualified, quoted table names for raw SQL.
 *
 * @since 0.1.0
 */
export const namesOf = (naming: Naming = {}): { readonly events: string; readonly failures: string } => {
  return { events: tableName(naming, "checkpoint_events"), failures: tableName(naming, "checkpoint_failures") }
}

/**
 * The migrations that create the checkpoint tables and their indexes.
 *
 * @since 0.1.0
 */
export const migrations = (naming: Naming = {}): ReadonlyArray<Migration> => {
  const names = namesOf(naming)
  const prefix = naming.prefix ?? ""
  const idx = (name: string) => quote(`${prefix}${name}`)
  return [{
    name: migrationName(naming, "checkpoint_1"),
    statements: [
      ...createSchema(naming),
      `create table if not exists ${names.events} (
        id bigserial primary key,
        topic text not null,
        group_id text not null,
        checksum text not null,
        entity_id text,
        event_time timestamptz,
        event_type text,
        event_version text,
        payload jsonb,
        created_at timestamptz not null default now()
      )`,
      `create unique index if not exists ${idx("checkpoint_events_key_idx")}
        on ${names.events} (topic, group_id, checksum)`,
      `create index if not exists ${idx("checkpoint_events_time_idx")}
        on ${names.events} (event_time desc, created_at desc)`,
      `create index if not exists ${idx("checkpoint_events_created_idx")} on ${names.events} (created_at)`,
      `create table if not exists ${names.failures} (
        id bigserial primary key,
        created_at timestamptz not null default now(),
        topic text not null,
        group_id text not null,
        checksum text not null,
        entity_id text,
        event_time timestamptz,
        event_type text,
        event_version text,
        payload jsonb,
        metadata jsonb not null,
        error_class text not null,
        error_message text not null,
        error_backtrace text not null
      )`,
      `create index if not exists ${idx("checkpoint_failures_created_idx")} on ${names.failures} (created_at desc)`,
      `create index if not exists ${idx("checkpoint_failures_key_idx")}
        on ${names.failures} (topic, group_id, checksum)`
    ]
  }]
}
