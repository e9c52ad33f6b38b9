/**
 * `deimos codegen`: TypeScript + Effect Schema modules from `.avsc` files (`Codegen.generateDirectory`).
 *
 * @since 0.1.0
 */
import { Codegen } from "@deimos/avro"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { CliError } from "../CliError.js"

const options = {
  schemas: Options.directory("schemas", { exists: "yes" }).pipe(
    Options.withDescription("Directory of .avsc files (searched recursively).")
  ),
  out: Options.directory("out").pipe(Options.withDescription("Directory to write the generated modules to.")),
  keyField: Options.text("key-field").pipe(
    Options.withDescription("Key field of every record that has it (keyConfig { field })."),
    Options.optional
  ),
  key: Options.text("key").pipe(
    Options.withDescription("RECORD=FIELD: the key field of one record (repeatable)."),
    Options.repeated
  ),
  keySchema: Options.text("key-schema").pipe(
    Options.withDescription("RECORD=KEY_RECORD: the key schema of one record (repeatable)."),
    Options.repeated
  )
}

const pairs = (values: ReadonlyArray<string>, flag: string) =>
  Effect.forEach(values, (v) => {
    const eq = v.indexOf("=")
    return eq <= 0 || eq === v.length - 1
      ? Effect.fail(new CliError({ reason: "Usage", message: `--${flag} wants RECORD=VALUE, got "${v}".` }))
      : Effect.succeed([v.slice(0, eq), v.slice(eq + 1)] as const)
  })

/**
 * @since 0.1.0
 */
export const command = Command.make("codegen", options, (o) =>
  Effect.gen(function*() {
    const keys: Record<string, { readonly field: string } | { readonly schema: string }> = {}
    for (const [record, field] of yield* pairs(o.key, "key")) keys[record] = { field }
    for (const [record, schema] of yield* pairs(o.keySchema, "key-schema")) keys[record] = { schema }
    const written = yield* Effect.try({
      try: () => Codegen.generateDirectory(o.schemas, o.out, { keyField: Option.getOrUndefined(o.keyField), keys }),
      catch: (cause) =>
        new CliError({
          reason: "Failed",
          message: `deimos codegen failed: ${cause instanceof Error ? cause.message : String(cause)}`,
          cause
        })
    })
    yield* Console.log(`Generated ${written.length} files in ${o.out}`)
  })).pipe(Command.withDescription("Generate TypeScript + Effect Schema modules from .avsc files."))
