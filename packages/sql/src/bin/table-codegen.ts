/**
 * `deimos-table --schema FILE.avsc --out DIR --key FIELD [--key FIELD]... [--table NAME] [--pg-schema SCHEMA]
 * [--no-timestamps]`: the drizzle table and the `CREATE TABLE` of an Avro record, for a record consumer.
 *
 * @since 0.1.0
 */
import { parseArgs } from "node:util"
import { generateFile } from "../TableCodegen.js"

const usage = "Usage: deimos-table --schema FILE.avsc --out DIR --key FIELD [--key FIELD]... [--table NAME]" +
  " [--pg-schema SCHEMA] [--no-timestamps]"

const main = () => {
  let values
  try {
    values = parseArgs({
      args: process.argv.slice(2),
      options: {
        schema: { type: "string" },
        out: { type: "string" },
        key: { type: "string", multiple: true },
        table: { type: "string" },
        "pg-schema": { type: "string" },
        "no-timestamps": { type: "boolean" }
      }
    }).values
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${usage}`)
    return 2
  }
  if (values.schema === undefined || values.out === undefined || (values.key ?? []).length === 0) {
    console.error(usage)
    return 2
  }
  try {
    const generated = generateFile(values.schema, values.out, {
      keyColumns: values.key ?? [],
      table: values.table,
      schema: values["pg-schema"],
      timestamps: values["no-timestamps"] !== true
    })
    console.log(`Generated ${generated.table}.ts and ${generated.table}.sql in ${values.out}`)
    return 0
  } catch (error) {
    console.error(`deimos-table failed: ${error instanceof Error ? error.message : String(error)}`)
    return 1
  }
}

process.exitCode = main()
