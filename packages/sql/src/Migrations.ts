/**
 * SQL migrations: named lists of statements, applied in order, each once, recorded in a migrations table
 * (`deimos_migrations` by default). Applying is idempotent and guarded by a Postgres advisory lock, so processes
 * starting at the same time do not race: the second waits for the first and then finds nothing left to do. Every
 * migration runs in the same transaction as its record, so a failing statement leaves nothing half-applied.
 *
 * The statements are plain SQL strings, so a project with a migration tool of its own can take them from
 * `statementsOf` and apply them there instead.
 *
 * @since 0.1.0
 */
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as Database from "./Database.js"
import type { DatabaseError } from "./DatabaseError.js"

/**
 * A migration: a name (the record of it being applied) and its statements.
 *
 * @since 0.1.0
 */
export interface Migration {
  readonly name: string
  readonly statements: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 */
export interface RunOptions {
  /** The table recording applied migrations, schema-qualified if wanted. @default "deimos_migrations" */
  readonly table?: string | undefined
}

/** The advisory lock every `run` takes (an arbitrary constant: "deimos" in ASCII). */
const lockId = 0x6465696d6f73

/** A name as a quoted SQL identifier (`schema.table` quoted part by part). */
export const quote = (name: string): string =>
  name.split(".").map((part) => `"${part.replace(/"/g, "\"\"")}"`).join(".")

/**
 * Where a set of tables lives (the outbox's, the checkpoint's, the poller's, …).
 *
 * @since 0.1.0
 */
export interface Naming {
  /** A Postgres schema of their own (created by their migrations). @default the search path's */
  readonly schema?: string | undefined
  /** Prefixed to the table names. @default "" */
  readonly prefix?: string | undefined
}

/**
 * A table of a set: its name with the prefix, quoted, qualified by the schema when there is one (for raw SQL).
 *
 * @since 0.1.0
 */
export const tableName = (naming: Naming, name: string): string => {
  const table = quote(`${naming.prefix ?? ""}${name}`)
  return naming.schema === undefined ? table : `${quote(naming.schema)}.${table}`
}

/**
 * A `LISTEN`/`NOTIFY` channel of a set: the schema (and `_`) when there is one, the prefix, then the name. Channels
 * belong to the whole database, so sets in other schemas or with other prefixes do not wake each other.
 *
 * @since 0.1.0
 */
export const channelName = (naming: Naming, name: string): string =>
  `${naming.schema === undefined ? "" : `${naming.schema}_`}${naming.prefix ?? ""}${name}`

/**
 * The name a set's migration is recorded under: the schema (`public` without one), then the prefixed name.
 *
 * @since 0.1.0
 */
export const migrationName = (naming: Naming, name: string): string =>
  `${naming.schema ?? "public"}.${naming.prefix ?? ""}${name}`

/**
 * The statement that creates a set's schema, first in its migration; none without a schema.
 *
 * @since 0.1.0
 */
export const createSchema = (naming: Naming): ReadonlyArray<string> =>
  naming.schema === undefined ? [] : [`create schema if not exists ${quote(naming.schema)}`]

/**
 * Applies the migrations not applied yet, in order, and answers the names it applied.
 *
 * @since 0.1.0
 */
export const run = (
  migrations: ReadonlyArray<Migration>,
  options: RunOptions = {}
): Effect.Effect<ReadonlyArray<string>, DatabaseError, Database.Database> => {
  const name = options.table ?? "deimos_migrations"
  const table = quote(name)
  const dot = name.lastIndexOf(".")
  return Database.transaction(Effect.gen(function*() {
    // the lock first: two processes creating the migrations table at once would collide
    yield* Database.execute(sql`select pg_advisory_xact_lock(${lockId})`)
    // a qualified table lives in a schema that may not exist yet: the migrations often create it
    if (dot > 0) yield* Database.execute(sql.raw(`create schema if not exists ${quote(name.slice(0, dot))}`))
    yield* Database.execute(
      sql.raw(
        `create table if not exists ${table} (name text primary key, applied_at timestamptz not null default now())`
      )
    )
    const rows = yield* Database.execute(sql.raw(`select name from ${table}`))
    const applied = new Set(rows.map((row) => String(row.name)))
    const done: Array<string> = []
    for (const migration of migrations) {
      if (applied.has(migration.name)) continue
      for (const statement of migration.statements) yield* Database.execute(sql.raw(statement))
      yield* Database.execute(sql`insert into ${sql.raw(table)} (name) values (${migration.name})`)
      done.push(migration.name)
    }
    return done
  }))
}

/**
 * The statements of migrations, in order, for a migration tool of one's own.
 *
 * @since 0.1.0
 */
export const statementsOf = (migrations: ReadonlyArray<Migration>): ReadonlyArray<string> =>
  migrations.flatMap((m) => m.statements)
