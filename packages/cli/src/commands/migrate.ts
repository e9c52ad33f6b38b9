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

const flags = [
  { flag: "database-url", env: "DATABASE_URL" },
  { flag: "schema", env: "OUTBOX_SCHEMA" },
  { flag: "prefix", env: "OUTBOX_PREFIX" }
] as const

const options = {
  databaseUrl: Settings.setting(
    "database-url",
    "DATABASE_URL",
    "Postgres URL (the other DATABASE_* variables apply too). Not needed with --print."
  ),
  schema: Settings.text("schema", "OUTBOX_SCHEMA", "Postgres schema of the tables (default: the search path)."),
  prefix: Settings.text("prefix", "OUTBOX_PREFIX", "Prefix of the table names."),
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
    const naming = { schema: Option.getOrUndefined(o.schema), prefix: Option.getOrUndefined(o.prefix) }
    const sets = MigrationSets.all.filter((s) => o.set.length === 0 || o.set.includes(s.name))
    if (o.print) {
      for (const set of sets) {
        yield* Console.log(`-- deimos migration set: ${set.name} (${set.description})`)
        for (const migration of set.migrations(naming)) {
          yield* Console.log(`-- ${migration.name}`)
          for (const statement of migration.statements) yield* Console.log(`${statement};\n`)
        }
      }
      return
    }
    const table = naming.schema === undefined ? undefined : `${naming.schema}.deimos_migrations`
    const applied = yield* Migrations.run(sets.flatMap((s) => s.migrations(naming)), { table }).pipe(
      Effect.provide(Database.layerConfig()),
      Settings.provide([["DATABASE_URL", o.databaseUrl]], flags),
      Effect.catchTag("DatabaseError", (error) =>
        Effect.fail(new CliError({ reason: "Failed", message: `migrate failed: ${error.message}`, cause: error })))
    )
    yield* Console.log(applied.length === 0 ? "Nothing to apply." : `Applied ${applied.join(", ")}`)
  })).pipe(
    Command.withDescription(
      `Apply the migrations (sets: ${names.join(", ")}), recorded in <schema>.deimos_migrations, or print them.`
    )
  )
