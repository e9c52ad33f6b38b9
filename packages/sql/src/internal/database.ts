/**
 * The work of `Database`: the drizzle databases over postgres.js and PGlite, the ambient transaction and the bridge
 * from drizzle's promise transactions to Effect.
 */
import { PGlite } from "@electric-sql/pglite"
import { type SQL, sql } from "drizzle-orm"
import { type PgDatabase, PgDialect, type PgQueryResultHKT } from "drizzle-orm/pg-core"
import { drizzle as drizzlePglite } from "drizzle-orm/pglite"
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import postgres from "postgres"
import type * as Database from "../Database.js"
import { DatabaseError, fromUnknown } from "../DatabaseError.js"

export type Db = PgDatabase<PgQueryResultHKT>
export type SQLQuery = SQL

/** Turns a drizzle `sql` template into its text and parameters (what `db.execute` does first). */
const dialect = new PgDialect()

/**
 * A query run as a prepared statement, kept by postgres.js on each connection under its text: parsed and planned
 * once per connection, then one round trip a run, where an unprepared query with parameters costs two (postgres.js
 * asks for their types first). Measured on the relay's batch queries: ~7% fewer CPU milliseconds per message and
 * ~8% more messages/s (58.5k → 63.7k with 4 workers, `bench/outbox.ts`'s drain).
 */
const prepared = (db: Db, query: SQL): Promise<unknown> =>
  db._.session.prepareQuery(dialect.sqlToQuery(query), undefined, "deimos", false).execute()

/**
 * The ambient transaction: its drizzle database, the notifications (channel and payload) it will send at commit, and
 * whether its connection was lost (then nothing more is sent on it).
 */
interface Ambient {
  readonly db: Db
  readonly notified: Set<string>
  readonly lost: { value: boolean }
}

/** Where the open transaction travels: the fiber's context. */
class Transaction extends Context.Tag("@deimos/sql/Database/Transaction")<Transaction, Ambient>() {}

/** drizzle's transaction config (its keys absent rather than undefined). */
const configOf = (options: Database.TransactionOptions | undefined) =>
  options === undefined || (options.isolationLevel === undefined && options.accessMode === undefined)
    ? undefined
    : {
      ...(options.isolationLevel === undefined ? {} : { isolationLevel: options.isolationLevel }),
      ...(options.accessMode === undefined ? {} : { accessMode: options.accessMode })
    }

/** A body that failed (or was interrupted): thrown inside drizzle's transaction so that it rolls back. */
class RolledBack<A, E> {
  constructor(readonly exit: Exit.Exit<A, E>) {}
}

const rowsOf = (result: unknown): ReadonlyArray<Record<string, unknown>> =>
  Array.isArray(result)
    ? result
    : ((result as { readonly rows?: unknown }).rows as ReadonlyArray<Record<string, unknown>>) ?? []

/**
 * Runs `effect` inside `db.transaction` (drizzle's: BEGIN … COMMIT on one connection, a savepoint on a transaction
 * database), in a fiber of its own that has the caller's context and fiber refs plus the transaction. The body's
 * failure or defect rolls back and is the result; interrupting the caller interrupts the body, waits for the
 * rollback, and ends there. A savepoint's notifications join its transaction's only when the savepoint succeeds.
 *
 * A transaction whose connection is lost fails with a `Connection` error, and nothing more is sent on that
 * connection: postgres.js (3.4) writes a ROLLBACK to the closed socket of a transaction whose connection was
 * killed, which throws outside any promise and leaves the pool stuck, so the driver's transaction is left pending
 * (one closure kept per lost connection) instead of being settled.
 */
const bridge = <A, E, R>(
  db: Db,
  effect: Effect.Effect<A, E, R>,
  parent: Ambient | undefined,
  config: Database.TransactionOptions | undefined
): Effect.Effect<A, E | DatabaseError, R> =>
  Effect.flatMap(Effect.runtime<R>(), (runtime) =>
    Effect.async<A, E | DatabaseError>((resume) => {
      let body: Fiber.RuntimeFiber<A, E> | undefined
      let interrupted = false
      let finish: () => void = () => {}
      const finished = new Promise<void>((resolve) => finish = resolve)
      let ended = false
      const end = (result: Effect.Effect<A, E | DatabaseError>) => {
        if (ended) return
        ended = true
        finish()
        resume(result)
      }
      const notified = new Set(parent?.notified)
      const lost = parent?.lost ?? { value: false }
      db.transaction(async (tx) => {
        if (interrupted) throw new RolledBack(Exit.interrupt(FiberId.none))
        const exit = await new Promise<Exit.Exit<A, E>>((resolve) => {
          body = Runtime.runFork(runtime)(Effect.provideService(effect, Transaction, { db: tx, notified, lost }))
          body.addObserver(resolve)
        })
        if (lost.value) {
          end(Effect.fail(connectionLost))
          return new Promise<never>(() => {})
        }
        if (Exit.isFailure(exit)) throw new RolledBack(exit)
        return exit.value
      }, configOf(config)).then(
        (value: A) => {
          if (parent !== undefined) { for (const once of notified) parent.notified.add(once) }
          end(Effect.succeed(value))
        },
        (error) => {
          if (error instanceof RolledBack) return end(error.exit as Exit.Exit<A, E>)
          const failure = fromUnknown("The transaction failed")(error)
          if (failure.reason === "Connection") {
            // the body may still be running: it stops, and sends nothing more
            lost.value = true
            body?.unsafeInterruptAsFork(FiberId.none)
          }
          end(Effect.fail(failure))
        }
      )
      return Effect.suspend(() => {
        interrupted = true
        body?.unsafeInterruptAsFork(FiberId.none)
        return Effect.promise(() => finished)
      })
    }))

const connectionLost = new DatabaseError({
  reason: "Connection",
  retriable: true,
  message: "The transaction's connection was lost: it is rolled back by the server and nothing more is sent on it"
})

/** The service over a drizzle database (the pool's), with its way of listening. */
const serviceOf = (
  kind: "postgres" | "pglite",
  base: Db,
  listenOn: (channel: string, push: (payload: string) => void) => Promise<() => Promise<void>>
): Database.Database.Service => {
  const ambient = Effect.map(Effect.serviceOption(Transaction), (o) => o._tag === "Some" ? o.value : undefined)
  const use = <A>(f: (db: Db) => PromiseLike<A>) =>
    Effect.flatMap(ambient, (tx) => {
      if (tx?.lost.value === true) return Effect.fail(connectionLost)
      const query = Effect.tryPromise({
        try: () => Promise.resolve(f(tx?.db ?? base)),
        catch: fromUnknown("The query failed")
      })
      return tx === undefined ? query : query.pipe(
        // the transaction's connection lost: nothing more goes to it
        Effect.tapError((error) => Effect.sync(() => error.reason === "Connection" && (tx.lost.value = true)))
      )
    })
  const execute = (query: SQL, options?: Database.ExecuteOptions) =>
    Effect.map(
      use((db) => kind === "postgres" && options?.prepare === true ? prepared(db, query) : db.execute(query)),
      rowsOf
    )
  return {
    kind,
    use,
    execute,
    transaction: (effect, options) =>
      Effect.flatMap(ambient, (tx) =>
        tx === undefined
          ? bridge(base, effect, undefined, options)
          // a savepoint of the open transaction (which commits, and notifies, for both)
          : bridge(tx.db, effect, tx, undefined)),
    inTransaction: Effect.map(ambient, (tx) => tx !== undefined),
    notify: (channel, payload = "") =>
      Effect.flatMap(ambient, (tx) => {
        if (tx !== undefined) {
          const once = `${channel}\u0000${payload}`
          if (tx.notified.has(once)) return Effect.void
          tx.notified.add(once)
        }
        return Effect.asVoid(execute(sql`select pg_notify(${channel}, ${payload})`))
      }),
    listen: (channel) =>
      Effect.gen(function*() {
        const queue = yield* Effect.acquireRelease(Queue.sliding<string>(1024), Queue.shutdown)
        yield* Effect.acquireRelease(
          Effect.tryPromise({
            try: () => listenOn(channel, (payload) => Queue.unsafeOffer(queue, payload)),
            catch: fromUnknown(`Cannot listen on ${channel}`)
          }),
          (unlisten) => Effect.promise(() => unlisten().catch(() => undefined))
        )
        return Stream.fromQueue(queue)
      })
  }
}

const seconds = (d: Duration.DurationInput | undefined, fallback: number) =>
  d === undefined ? fallback : Math.max(1, Math.round(Duration.toSeconds(Duration.decode(d))))

export const makePostgres = (
  options: Database.Options
): Effect.Effect<Database.Database.Service, DatabaseError, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* Effect.acquireRelease(
      Effect.sync(() =>
        postgres(Redacted.value(options.url), {
          max: options.max ?? 10,
          prepare: options.prepare ?? true,
          connect_timeout: seconds(options.connectTimeout, 10),
          idle_timeout: seconds(options.idleTimeout, 60),
          onnotice: () => {},
          connection: {
            application_name: options.applicationName ?? "deimos",
            ...(options.searchPath === undefined ? {} : { search_path: options.searchPath })
          }
        })
      ),
      (client) =>
        Effect.promise(() => client.end({ timeout: seconds(options.closeTimeout, 10) }).catch(() => undefined))
    )
    const db = drizzlePostgres(client) as unknown as Db
    const service = serviceOf("postgres", db, async (channel, push) => {
      const { unlisten } = await client.listen(channel, (payload) => push(payload))
      return unlisten
    })
    // a database that cannot be reached fails the layer, not the first query
    yield* service.execute(sql`select 1`).pipe(
      Effect.mapError((error) =>
        fromUnknown(`Cannot connect to the database at ${hostOf(Redacted.value(options.url))}`)(error.cause ?? error)
      )
    )
    return service
  })

/** The host and database of a URL, without its credentials, for messages. */
const hostOf = (url: string) => {
  try {
    const parsed = new URL(url)
    return `${parsed.host}${parsed.pathname}`
  } catch {
    return "(an invalid URL)"
  }
}

export const makePglite = (
  options: Database.PgliteOptions
): Effect.Effect<Database.Database.Service, DatabaseError, Scope.Scope> =>
  Effect.gen(function*() {
    const pg = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const pg = new PGlite(options.dataDir)
          await pg.waitReady
          return pg
        },
        catch: fromUnknown(`Cannot open PGlite${options.dataDir === undefined ? "" : ` at ${options.dataDir}`}`)
      }),
      (pg) => Effect.promise(() => pg.close().catch(() => undefined))
    )
    const db = drizzlePglite(pg) as unknown as Db
    return serviceOf("pglite", db, (channel, push) => pg.listen(channel, (payload) => push(payload)))
  })
