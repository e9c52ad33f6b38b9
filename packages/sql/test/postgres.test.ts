/**
 * `Database.layer` against the Postgres server of the machine (127.0.0.1:5432, database `test`): the conformance
 * suite, then what only a server and a pool have. Each layer built here gets a schema of its own (dropped at the
 * end) and an `application_name` of its own, so that files and runs in parallel do not meet.
 */
import { expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import postgres from "postgres"
import * as Database from "../src/Database.js"
import { DatabaseError } from "../src/DatabaseError.js"
import { suite } from "./databaseSuite.js"

const server = "postgres://postgres@127.0.0.1:5432/test"

/** A client of its own, beside the pool under test: sets the schema up, and looks at the server from outside. */
class Admin extends Context.Tag("@deimos/sql/test/Admin")<Admin, {
  readonly sql: postgres.Sql
  /** The schema of this layer, the admin client's `search_path` too. */
  readonly schema: string
  /** The `application_name` of the pool under test (and the prefix of the tests' own pools). */
  readonly applicationName: string
}>() {}

const AdminLive = Layer.scoped(
  Admin,
  Effect.gen(function*() {
    const id = `${process.pid}_${Math.random().toString(36).slice(2, 10)}`
    const schema = `deimos_sql_${id}`
    const client = yield* Effect.acquireRelease(
      Effect.sync(() =>
        postgres(server, {
          max: 2,
          onnotice: () => {},
          connection: { application_name: `deimos_sql_admin_${id}`, search_path: schema }
        })
      ),
      (client) => Effect.promise(() => client.end({ timeout: 5 }))
    )
    yield* Effect.acquireRelease(
      Effect.tryPromise(() => client.unsafe(`create schema "${schema}"`)),
      () => Effect.orDie(Effect.tryPromise(() => client.unsafe(`drop schema "${schema}" cascade`)))
    )
    return { sql: client, schema, applicationName: `deimos_sql_${id}` }
  })
)

const urlOf = (applicationName: string) => Redacted.make(`${server}?application_name=${applicationName}`)

/** The pool under test, in the admin's schema, with the admin's `application_name`. */
const TestLayer = Layer.unwrapEffect(
  Effect.map(
    Admin,
    ({ applicationName, schema }) => Database.layer({ url: urlOf(applicationName), searchPath: schema, max: 4 })
  )
).pipe(Layer.provideMerge(AdminLive))

suite("postgres.js pool", TestLayer)

const admin = <A>(f: (sql: postgres.Sql) => Promise<A>) =>
  Effect.flatMap(Admin, (a) => Effect.tryPromise(() => f(a.sql)))

/** The server's connections of `applicationName` (the pool's, and its listening connection). */
const connectionsOf = (applicationName: string) =>
  Effect.map(
    admin((sql) => sql`select pid from pg_stat_activity where application_name = ${applicationName}`),
    (rows) => rows.length
  )

/** Terminates, from the admin client, the backend of `applicationName` running `pg_sleep` (once it runs); its pid. */
const kill = (applicationName: string) =>
  admin((sql) =>
    sql<Array<{ pid: number }>>`
      select pid from pg_stat_activity
      where application_name = ${applicationName} and state = 'active' and query like '%pg_sleep%'`
  ).pipe(
    Effect.filterOrFail((rows) => rows.length === 1, () => "not running yet"),
    Effect.retry(Schedule.intersect(Schedule.spaced("20 millis"), Schedule.recurs(100))),
    Effect.map((rows) => rows[0]!.pid),
    Effect.tap((pid) => admin((sql) => sql`select pg_terminate_backend(${pid})`))
  )

/**
 * A query after a lost connection must answer (not hang). postgres.js 3.4.9 hands the killed backend's error to the
 * first query on the new connection, without running it (porsager/postgres#1223): one retriable Connection failure
 * is allowed before the answer, and no more.
 */
const stillServing = <A, E, R>(query: Effect.Effect<A, E, R>) =>
  query.pipe(
    Effect.retry({
      times: 1,
      while: (e) => e instanceof DatabaseError && e.reason === "Connection" && e.retriable
    }),
    Effect.timeoutFail({
      duration: "3 seconds",
      onTimeout: () => new Error("the pool did not recover: the next query hangs")
    })
  )

layer(TestLayer, { excludeTestServices: true, timeout: "60 seconds" })("postgres.js pool", (it) => {
  it.effect(
    "fails to build with a Connection error naming host and database, not the password",
    () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.scoped(Layer.build(Database.layer({
          url: Redacted.make("postgres://postgres:s3cret-pw@127.0.0.1:1/test"),
          connectTimeout: "2 seconds"
        }))))
        expect(error).toBeInstanceOf(DatabaseError)
        expect(error).toMatchObject({ reason: "Connection", retriable: true })
        expect(error.message).toContain("127.0.0.1:1/test")
        expect(error.message).not.toContain("s3cret-pw")
      }),
    15_000
  )

  it.effect("writes are seen by another client once committed, and not before", () =>
    Effect.gen(function*() {
      yield* Database.execute(sql`create table seen_by_others (id integer primary key, label text not null)`)
      const others = admin((sql) => sql<Array<{ label: string }>>`select label from seen_by_others order by id`).pipe(
        Effect.map((rows) => rows.map((row) => row.label))
      )
      yield* Database.execute(sql`insert into seen_by_others values (1, 'outside')`)
      expect(yield* others).toEqual(["outside"])
      yield* Database.transaction(Effect.gen(function*() {
        yield* Database.execute(sql`insert into seen_by_others values (2, 'inside')`)
        expect(yield* others).toEqual(["outside"])
      }))
      expect(yield* others).toEqual(["outside", "inside"])
    }), 15_000)

  it.scoped(
    "a connection killed under a query fails it with a retriable Connection error, and the pool serves on",
    () =>
      Effect.gen(function*() {
        const { applicationName, schema } = yield* Admin
        const name = `${applicationName}_killed`
        const database = yield* Database.make({
          url: urlOf(name),
          searchPath: schema,
          max: 1,
          closeTimeout: "1 second"
        })
        const sleeping = yield* Effect.fork(database.execute(sql`select pg_sleep(5)`))
        const pid = yield* kill(name)
        const error = yield* Effect.flip(Fiber.join(sleeping)).pipe(Effect.timeout("3 seconds"))
        expect(error).toBeInstanceOf(DatabaseError)
        expect(error).toMatchObject({ reason: "Connection", retriable: true })
        // the one connection of the pool is a new one
        const [row] = yield* database.execute(sql`select pg_backend_pid() as pid`).pipe(stillServing)
        expect(row?.pid).toEqual(expect.any(Number))
        expect(row?.pid).not.toBe(pid)
      }),
    15_000
  )

  it.scoped(
    "a connection killed under a transaction fails it with a retriable Connection error, and the pool recovers",
    () =>
      Effect.gen(function*() {
        const { applicationName, schema } = yield* Admin
        const name = `${applicationName}_killed_tx`
        const database = yield* Database.make({
          url: urlOf(name),
          searchPath: schema,
          max: 1,
          closeTimeout: "1 second"
        })
        yield* database.execute(sql`create table killed_tx (id integer primary key)`)
        const sleeping = yield* Effect.fork(database.transaction(Effect.zipRight(
          database.execute(sql`insert into killed_tx values (1)`),
          database.execute(sql`select pg_sleep(5)`)
        )))
        yield* kill(name)
        const error = yield* Effect.flip(Fiber.join(sleeping)).pipe(Effect.timeout("3 seconds"))
        expect(error).toBeInstanceOf(DatabaseError)
        expect(error).toMatchObject({ reason: "Connection", retriable: true })
        const rows = yield* database.execute(sql`select count(*)::int as n from killed_tx`).pipe(stillServing)
        expect(rows).toEqual([{ n: 0 }])
      }),
    15_000
  )

  it.effect("closing the scope closes the pool and its listening connection", () =>
    Effect.gen(function*() {
      const applicationName = `${(yield* Admin).applicationName}_closed`
      yield* Effect.scoped(Effect.gen(function*() {
        const database = yield* Database.make({ url: urlOf(applicationName), max: 3 })
        yield* database.listen(applicationName)
        yield* Effect.all(Array.from({ length: 3 }, () => database.execute(sql`select pg_sleep(0.05)`)), {
          concurrency: "unbounded"
        })
        expect(yield* connectionsOf(applicationName)).toBeGreaterThanOrEqual(2)
      }))
      // the server notices the goodbyes a moment later
      const left = yield* connectionsOf(applicationName).pipe(
        Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (n) => n === 0, times: 50 })
      )
      expect(left).toBe(0)
    }), 15_000)

  it.effect(
    "layerConfig reads DATABASE_URL, DATABASE_SEARCH_PATH and DATABASE_POOL_MAX",
    () =>
      Effect.gen(function*() {
        const { applicationName, schema } = yield* Admin
        const provider = ConfigProvider.fromMap(
          new Map([
            ["DATABASE_URL", Redacted.value(urlOf(`${applicationName}_config`))],
            ["DATABASE_SEARCH_PATH", schema],
            ["DATABASE_POOL_MAX", "1"],
            ["DATABASE_CONNECT_TIMEOUT", "5 seconds"]
          ]),
          { pathDelim: "_" }
        )
        const seen = yield* Effect.gen(function*() {
          const [settings] = yield* Database.execute(
            sql`select current_setting('search_path') as search_path, current_setting('application_name') as app`
          )
          const pids = yield* Effect.all(
            Array.from({ length: 3 }, () => Database.execute(sql`select pg_backend_pid() as pid, pg_sleep(0.05)`)),
            { concurrency: "unbounded" }
          )
          return { settings, pids: new Set(pids.map(([row]) => row?.pid)).size }
        }).pipe(Effect.provide(Database.layerConfig()), Effect.withConfigProvider(provider))
        expect(seen).toEqual({ settings: { search_path: schema, app: `${applicationName}_config` }, pids: 1 })
      }),
    15_000
  )

  it.effect("layerConfig without DATABASE_URL fails with a ConfigError naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(Database.layerConfig()))).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(), { pathDelim: "_" }))
      )
      expect(ConfigError.isConfigError(error)).toBe(true)
      expect(error).toMatchObject({ _op: "MissingData", path: ["DATABASE", "URL"] })
    }), 15_000)

  it.scoped(
    "a query asked to be prepared is kept on its connection, unless the pool was made with prepare: false",
    () =>
      Effect.gen(function*() {
        const { applicationName, schema } = yield* Admin
        // the statements kept by the connection of a transaction (pg_prepared_statements is its session's own)
        const kept = (database: Database.Database.Service, marker: string) =>
          database.transaction(Effect.gen(function*() {
            // with a parameter: postgres.js sends a query without any by the simple protocol, never prepared
            yield* database.execute(sql`select ${1}::int as ${sql.identifier(marker)}`, { prepare: true })
            yield* database.execute(sql`select ${2}::int as ${sql.identifier(`${marker}_plain`)}`)
            const rows = yield* database.execute(
              sql`select statement from pg_prepared_statements where statement like ${`%${marker}%`}`
            )
            return rows.map((row) => String(row.statement))
          }))
        const preparing = yield* Database.make({ url: urlOf(`${applicationName}_prep`), searchPath: schema, max: 1 })
        expect(yield* kept(preparing, "probe_on")).toEqual([`select $1::int as "probe_on"`])
        const never = yield* Database.make({
          url: urlOf(`${applicationName}_noprep`),
          searchPath: schema,
          max: 1,
          prepare: false
        })
        expect(yield* kept(never, "probe_off")).toEqual([])
      }),
    15_000
  )

  it.effect("a statement timeout is a retriable Timeout error (57014)", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Database.transaction(Effect.zipRight(
        Database.execute(sql`set local statement_timeout = '50ms'`),
        Database.execute(sql`select pg_sleep(2)`)
      )))
      expect(error).toMatchObject({ _tag: "DatabaseError", reason: "Timeout", code: "57014", retriable: true })
    }), 15_000)

  it.scoped(
    "listen takes a connection of its own: NOTIFY arrives while every pooled connection is busy",
    () =>
      Effect.gen(function*() {
        const { applicationName, schema } = yield* Admin
        const database = yield* Database.make({ url: urlOf(`${applicationName}_busy`), searchPath: schema, max: 1 })
        const payloads = yield* database.listen(`${applicationName}_busy`)
        const first = yield* Effect.fork(Stream.runHead(payloads))
        const busy = yield* Effect.fork(database.execute(sql`select pg_sleep(0.5)`))
        yield* admin((sql) => sql`select pg_notify(${`${applicationName}_busy`}, 'while busy')`)
        expect(yield* Fiber.join(first).pipe(Effect.timeout("400 millis"))).toEqual(Option.some("while busy"))
        yield* Fiber.join(busy)
      }),
    15_000
  )
})
