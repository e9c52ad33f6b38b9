/**
 * `deimos migrate`: applies the toolkit's migrations (every set of `MigrationSets.all`, or those named), or prints
 * their SQL for a migration tool of one's own.
 *
 * @since 0.1.0
 */
import { Database, Migrations } from "@deimos/sql"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { CliError } from "../CliError.js"
import * as MigrationSets from "../MigrationSets.js"
import * as Settings from "../Settings.js"

const names = MigrationSets.all.map((s) => s.name)

const placement = MigrationSets.all.map((s) =>
  s.env === undefined ? `${s.name}: the search path` : `${s.name}: ${s.env.schema}, ${s.env.prefix}`
).join("; ")

const flags = [{ flag: "database-url", env: "DATABASE_URL" }] as const

const options = {
  databaseUrl: Settings.setting(
    "database-url",
    "DATABASE_URL",
    "Postgres URL (the other DATABASE_* variables apply too). Not needed with --print."
  ),
  schema: Options.text("schema").pipe(
    Options.withDescription(
      `Postgres schema of every set's tables. Without it each set reads its own variable (${placement}).`
    ),
    Options.optional
  ),
  prefix: Options.text("prefix").pipe(
    Options.withDescription("Prefix of every set's table names (without it, each set's own variable)."),
    Options.optional
  ),
  set: Options.choice("set", names as [string, ...Array<string>]).pipe(
    Options.withDescription(`Only this migration set (repeatable; default: all of ${names.join(", ")}).`),
    Options.repeated
  ),
  print: Options.boolean("print").pipe(
    Options.withDescription("Write the SQL to standard output instead of applying it.")
  )
}

/**
 * @since 0.1.0
 */
export const command = Command.make("migrate", options, (o) =>
  Effect.gen(function*() {
    const given = { schema: Option.getOrUndefined(o.schema), prefix: Option.getOrUndefined(o.prefix) }
    const sets = MigrationSets.all.filter((s) => o.set.length === 0 || o.set.includes(s.name))
    // each set's place read before anything is applied: a configuration mistake is reported as one
    const placed = yield* Effect.forEach(
      sets,
      (set) =>
        Effect.gen(function*() {
          return { set, naming: yield* MigrationSets.namingOf(set, given) }
        })
    ).pipe(Settings.provide([]))
    if (o.print) {
      for (const { naming, set } of placed) {
        yield* Console.log(`-- deimos migration set: ${set.name} (${set.description})`)
        for (const migration of set.migrations(naming)) {
          yield* Console.log(`-- ${migration.name}`)
          for (const statement of migration.statements) yield* Console.log(`${statement};\n`)
        }
      }
      return
    }
    const applied = yield* Effect.gen(function*() {
      const database = yield* Database.config
      return yield* Effect.forEach(
        placed,
        ({ naming, set }) => Migrations.run(set.migrations(naming), { table: MigrationSets.recordTable(naming) })
      ).pipe(Effect.provide(Database.layer(database)))
    }).pipe(
      Settings.provide([["DATABASE_URL", o.databaseUrl]], flags),
      Effect.catchTag("DatabaseError", (error) =>
        Effect.fail(new CliError({ reason: "Failed", message: `migrate failed: ${error.message}`, cause: error })))
    )
    const all = applied.flat()
    yield* Console.log(all.length === 0 ? "Nothing to apply." : `Applied ${all.join(", ")}`)
  })).pipe(
    Command.withDescription(
      `Apply the migrations (sets: ${names.join(", ")}), each recorded in <schema>.deimos_migrations of its ` +
        "schema, or print them. Reads DATABASE_URL and the DATABASE_* variables, and each set's placement " +
        `variables when --schema/--prefix are not given (${placement}).`
    )
  )
