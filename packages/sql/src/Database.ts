/**
 * The database as a service, over drizzle: Postgres through postgres.js (`layer`), or PGlite, Postgres in the
 * process, for zero-setup demos and users without a server (`layerPglite`).
 *
 * Transactions are ambient: `Database.transaction(effect)` runs `effect` on one connection inside BEGIN/COMMIT, and
 * every query made through the service inside it — `Database.use((db) => …)` with the user's own drizzle queries,
 * `Database.execute`, an outbox publish — joins that transaction. A failure, a defect or an interruption rolls it
 * back; a nested call is a savepoint. The transaction travels in the fiber's context, so what runs inside the effect
 * (and fibers forked from it) sees it, and nothing outside does.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { DatabaseError } from "./DatabaseError.js"
import * as internal from "./internal/database.js"

/**
 * A drizzle database: the pool's, or the ambient transaction's.
 *
 * @since 0.1.0
 */
export type Db = internal.Db

/**
 * Isolation and access of a transaction.
 *
 * @since 0.1.0
 */
export interface TransactionOptions {
  /** @default "read committed" (Postgres's default) */
  readonly isolationLevel?: "read committed" | "repeatable read" | "serializable" | undefined
  /** @default "read write" */
  readonly accessMode?: "read only" | "read write" | undefined
}

/**
 * How `execute` runs a query.
 *
 * @since 0.1.0
 */
export interface ExecuteOptions {
  /**
   * Run it as a prepared statement, kept on each connection under its text: for a query whose text stays the same
   * run after run (only its parameters change), which is then parsed and planned once per connection and costs one
   * round trip instead of two. Not for text built anew each time (every text is kept). Ignored by PGlite and by a
   * pool made with `prepare: false`. @default false
   */
  readonly prepare?: boolean | undefined
}

/**
 * @since 0.1.0
 */
export declare namespace Database {
  /**
   * @since 0.1.0
   */
  export interface Service {
    /** `postgres` (a server through postgres.js) or `pglite` (in the process). */
    readonly kind: "postgres" | "pglite"
    /** Runs `f` on the ambient drizzle database (the transaction's inside `transaction`, the pool's outside). */
    readonly use: <A>(f: (db: Db) => PromiseLike<A>) => Effect.Effect<A, DatabaseError>
    /** Runs raw SQL (a drizzle `sql` template) on the ambient database and answers its rows. */
    readonly execute: (
      query: internal.SQLQuery,
      options?: ExecuteOptions
    ) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, DatabaseError>
    /** Runs `effect` in a transaction (a savepoint when one is open); rolled back on failure, defect or interruption. */
    readonly transaction: <A, E, R>(
      effect: Effect.Effect<A, E, R>,
      options?: TransactionOptions
    ) => Effect.Effect<A, E | DatabaseError, R>
    /** Whether a transaction is open in this fiber. */
    readonly inTransaction: Effect.Effect<boolean>
    /**
     * `NOTIFY channel, payload`: at the commit of the ambient transaction (once per transaction, channel and payload,
     * however often it is asked for), at once outside one. The payload is empty by default.
     */
    readonly notify: (channel: string, payload?: string) => Effect.Effect<void, DatabaseError>
    /** The payloads of `NOTIFY channel` while the scope is open (a connection of its own). */
    readonly listen: (channel: string) => Effect.Effect<Stream.Stream<string>, DatabaseError, Scope.Scope>
  }
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Database extends Context.Tag("@deimos/sql/Database")<Database, Database.Service>() {}

/**
 * Runs `f` on the ambient drizzle database of the `Database` in context.
 *
 * @since 0.1.0
 */
export const use = <A>(f: (db: Db) => PromiseLike<A>): Effect.Effect<A, DatabaseError, Database> =>
  Effect.flatMap(Database, (database) => database.use(f))

/**
 * Runs raw SQL on the ambient database of the `Database` in context.
 *
 * @since 0.1.0
 */
export const execute = (
  query: internal.SQLQuery,
  options?: ExecuteOptions
): Effect.Effect<ReadonlyArray<Record<string, unknown>>, DatabaseError, Database> =>
  Effect.flatMap(Database, (database) => database.execute(query, options))

/**
 * Runs `effect` in a transaction of the `Database` in context (a savepoint when one is open).
 *
 * @since 0.1.0
 */
export const transaction = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options?: TransactionOptions
): Effect.Effect<A, E | DatabaseError, R | Database> =>
  Effect.flatMap(Database, (database) => database.transaction(effect, options))

/**
 * @since 0.1.0
 */
export interface Options {
  /** `postgres://user:password@host:port/database`. */
  readonly url: Redacted.Redacted
  /** Connections in the pool. @default 10 */
  readonly max?: number | undefined
  /** Longest a connection attempt may take. @default 10 seconds */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** A connection unused this long is closed. @default 60 seconds */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Longest closing the pool waits for queries in flight when the scope closes. @default 10 seconds */
  readonly closeTimeout?: Duration.DurationInput | undefined
  /** Postgres's `search_path` for every connection, e.g. a schema of its own. @default the server's */
  readonly searchPath?: string | undefined
  /** The connections' `application_name`, as `pg_stat_activity` shows it. @default "deimos" */
  readonly applicationName?: string | undefined
  /**
   * Whether queries that ask for it (`execute(query, { prepare: true })`, as the outbox relay's do) run as prepared
   * statements: false behind a pooler that does not keep them across transactions (PgBouncer in transaction mode
   * before 1.21, or without `max_prepared_statements`). @default true
   */
  readonly prepare?: boolean | undefined
}

/**
 * The service over a postgres.js pool, closed (within `closeTimeout`) when the scope closes.
 *
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<Database.Service, DatabaseError, Scope.Scope> =>
  internal.makePostgres(options)

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Database, DatabaseError> => Layer.scoped(Database, make(options))

/**
 * The options from `Config` (with the default provider, the environment): `DATABASE_URL` (redacted),
 * `DATABASE_POOL_MAX` (10), `DATABASE_CONNECT_TIMEOUT` (10 seconds), `DATABASE_IDLE_TIMEOUT` (60 seconds),
 * `DATABASE_CLOSE_TIMEOUT` (10 seconds), `DATABASE_SEARCH_PATH` (none), `DATABASE_APPLICATION_NAME` ("deimos"),
 * `DATABASE_PREPARE` (true).
 *
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  url: Config.redacted("URL"),
  max: Config.withDefault(Config.integer("POOL_MAX"), 10),
  connectTimeout: Config.withDefault(Config.duration("CONNECT_TIMEOUT"), Duration.seconds(10)),
  idleTimeout: Config.withDefault(Config.duration("IDLE_TIMEOUT"), Duration.seconds(60)),
  closeTimeout: Config.withDefault(Config.duration("CLOSE_TIMEOUT"), Duration.seconds(10)),
  searchPath: Config.option(Config.string("SEARCH_PATH")).pipe(
    Config.map((o) => o._tag === "Some" ? o.value : undefined)
  ),
  applicationName: Config.withDefault(Config.string("APPLICATION_NAME"), "deimos"),
  prepare: Config.withDefault(Config.boolean("PREPARE"), true)
}).pipe(Config.nested("DATABASE"))

/**
 * `layer` with its options from `Config`: by default {@link config}; any `Config.Wrap` of the options works.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options> = config
): Layer.Layer<Database, ConfigError.ConfigError | DatabaseError> =>
  Layer.scoped(Database, Effect.flatMap(Config.unwrap(options), make))

/**
 * @since 0.1.0
 */
export interface PgliteOptions {
  /** Where PGlite keeps its files; in memory without it. */
  readonly dataDir?: string | undefined
}

/**
 * The service over PGlite (Postgres compiled to WebAssembly, in this process): one connection, so transactions run
 * one at a time and a query outside them waits for the one open. Closed when the scope closes.
 *
 * @since 0.1.0
 */
export const makePglite = (options: PgliteOptions = {}): Effect.Effect<Database.Service, DatabaseError, Scope.Scope> =>
  internal.makePglite(options)

/**
 * @since 0.1.0
 * @category layers
 */
export const layerPglite = (options: PgliteOptions = {}): Layer.Layer<Database, DatabaseError> =>
  Layer.scoped(Database, makePglite(options))
