/**
 * `deimos codegen --schemas DIR --out DIR [--key-field FIELD] [--key RECORD=FIELD]... [--key-schema RECORD=KEY]...`:
 * TypeScript + Effect Schema modules from `.avsc` files.
 *
 * @since 0.1.0
 */
import { parseArgs } from "node:util"
import { generateDirectory, type Options } from "./Codegen.js"

const usage = "Usage: deimos codegen --schemas DIR --out DIR [--key-field FIELD] [--key RECORD=FIELD]..." +
  " [--key-schema RECORD=KEY_RECORD]..."

const pairs = (values: ReadonlyArray<string> | undefined, flag: string): Array<readonly [string, string]> =>
  (values ?? []).map((v) => {
    const eq = v.indexOf("=")
    if (eq <= 0 || eq === v.length - 1) throw new Error(`${flag} wants RECORD=VALUE, got "${v}"`)
    return [v.slice(0, eq), v.slice(eq + 1)] as const
  })

const main = () => {
  const [command, ...rest] = process.argv.slice(2)
  if (command !== "codegen") {
    console.error(usage)
    return 2
  }
  let options: Options
  let schemas: string | undefined
  let out: string | undefined
  try {
    const { values } = parseArgs({
      args: rest,
      options: {
        schemas: { type: "string" },
        out: { type: "string" },
        "key-field": { type: "string" },
        key: { type: "string", multiple: true },
        "key-schema": { type: "string", multiple: true }
      }
    })
    schemas = values.schemas
    out = values.out
    const keys: Record<string, { readonly field: string } | { readonly schema: string }> = {}
    for (const [record, field] of pairs(values.key, "--key")) keys[record] = { field }
    for (const [record, schema] of pairs(values["key-schema"], "--key-schema")) keys[record] = { schema }
    options = { keyField: values["key-field"], keys }
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${usage}`)
    return 2
  }
  if (schemas === undefined || out === undefined) {
    console.error(usage)
    return 2
  }
  try {
    const written = generateDirectory(schemas, out, options)
    console.log(`Generated ${written.length} files in ${out}`)
    return 0
  } catch (error) {
    console.error(`deimos codegen failed: ${error instanceof Error ? error.message : String(error)}`)
    return 1
  }
}

process.exitCode = main()
