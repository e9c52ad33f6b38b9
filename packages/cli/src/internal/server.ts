/**
 * What `deimos events-api` and `deimos console` share: the server's flags over the `CHECKPOINT_*` variables, the
 * bearer token from a variable of the user's choice, the checkpoint migrations, and serving until interrupted with
 * the address logged and the failures count as progress.
 */
import { CheckpointTables, EventsServer } from "@deimos/checkpoint"
import { Database, Migrations } from "@deimos/sql"
import * as Options from "@effect/cli/Options"
import * as HttpServer from "@effect/platform/HttpServer"
import { sql } from "drizzle-orm"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import { CliError } from "../CliError.js"
import * as MigrationSets from "../MigrationSets.js"
import * as Progress from "../Progress.js"
import * as Settings from "../Settings.js"

export const flags = [
  { flag: "database-url", env: "DATABASE_URL" },
  { flag: "port", env: "CHECKPOINT_API_PORT" },
  { flag: "host", env: "CHECKPOINT_API_HOST" },
  { flag: "schema", env: "CHECKPOINT_SCHEMA" },
  { flag: "prefix", env: "CHECKPOINT_TABLE_PREFIX" }
] as const

export const options = {
  databaseUrl: Settings.setting("database-url", "DATABASE_URL", "Postgres URL (DATABASE_* variables apply too)."),
  port: Settings.setting("port", "CHECKPOINT_API_PORT", "Port to listen on (default 9292; --port 0 picks a free one)."),
  host: Settings.setting("host", "CHECKPOINT_API_HOST", "Address to listen on (default 0.0.0.0)."),
  tokenEnv: Options.text("token-env").pipe(
    Options.withDescription(
      "The variable holding the bearer token that mutating routes (retry, delete) need, in place of " +
        "CHECKPOINT_API_TOKEN (a token given on the command line would show in the process list). Without a " +
        "token those routes are open."
    ),
    Options.optional
  ),
  schema: Settings.setting("schema", "CHECKPOINT_SCHEMA", "Postgres schema of the checkpoint tables."),
  prefix: Settings.setting("prefix", "CHECKPOINT_TABLE_PREFIX", "Prefix of the checkpoint table names."),
  migrate: Options.boolean("migrate").pipe(
    Options.withDescription(
      "Apply the checkpoint migrations first (as deimos migrate --set checkpoint). Env CHECKPOINT_MIGRATE=true."
    )
  )
}

export interface Flags {
  readonly databaseUrl: Option.Option<string>
  readonly port: Option.Option<string>
  readonly host: Option.Option<string>
  readonly tokenEnv: Option.Option<string>
  readonly schema: Option.Option<string>
  readonly prefix: Option.Option<string>
  readonly migrate: boolean
}

export const values = (o: Flags) =>
  [
    ["DATABASE_URL", o.databaseUrl],
    ["CHECKPOINT_API_HOST", o.host],
    ["CHECKPOINT_SCHEMA", o.schema],
    ["CHECKPOINT_TABLE_PREFIX", o.prefix]
  ] as const

/** The server's settings, the token read from `--token-env`'s variable when given; and whether to migrate. */
export const settings = (o: Flags) =>
  Effect.gen(function*() {
    const [server, database, migrate] = yield* Config.all([
      EventsServer.config,
      Database.config,
      Config.withDefault(Config.boolean("CHECKPOINT_MIGRATE"), false)
    ])
    let token: Redacted.Redacted | undefined = server.token
    if (Option.isSome(o.tokenEnv)) {
      const name = o.tokenEnv.value
      const read = yield* Config.option(Config.redacted(name))
      if (Option.isNone(read)) {
        return yield* new CliError({
          reason: "Config",
          message: `${name} is not set: set ${name} to the bearer token, or pass --token-env with the variable that ` +
            "holds it."
        })
      }
      token = read.value
    }
    let port = server.port
    if (Option.isSome(o.port)) {
      // the flag takes 0 (a free port, as tests and side-by-side runs want), which the variable does not
      const given = o.port.value
      if (!/^\d{1,5}$/.test(given) || Number(given) > 65535) {
        return yield* new CliError({
          reason: "Usage",
          message: `--port wants a port number from 0 to 65535 (0: a free one), got "${given}".`
        })
      }
      port = Number(given)
    }
    return { server: { ...server, port, token }, database, migrate: o.migrate || migrate }
  })

/**
 * Serves `routes` beside the events API until interrupted: migrates first when asked, logs the address (`label on
 * http://host:port/path`) and shows the failures stored as progress.
 */
export const serve = <E>(
  label: string,
  path: string,
  server: EventsServer.Options<readonly []> & { readonly tables: CheckpointTables.Naming },
  migrate: boolean,
  routes: Layer.Layer<never, E, Database.Database>
) =>
  Effect.gen(function*() {
    if (migrate) {
      const applied = yield* Migrations.run(CheckpointTables.migrations(server.tables), {
        table: MigrationSets.recordTable(server.tables)
      })
      yield* Effect.logInfo(applied.length === 0 ? "Migrations: nothing to apply" : `Applied ${applied.join(", ")}`)
    }
    const context = yield* Layer.build(EventsServer.layer(server, routes))
    const address = Context.get(context, HttpServer.HttpServer).address
    const where = address._tag === "TcpAddress" ? `http://${address.hostname}:${address.port}${path}` : address.path
    yield* Effect.logInfo(
      `${label} on ${where}${server.token === undefined ? " (no token: retry and delete are open)" : ""}`
    )
    const failures = CheckpointTables.namesOf(server.tables).failures
    yield* Progress.show(Effect.map(
      Database.execute(sql.raw(`select count(*)::bigint as n from ${failures}`)),
      (rows) => `${label} on ${where}: ${Number(rows[0].n)} failures stored`
    ))
    return yield* Effect.never
  }).pipe(Effect.scoped)
