/**
 * `deimos codegen --schemas DIR --out DIR`: TypeScript + Effect Schema modules from `.avsc` files.
 *
 * @since 0.1.0
 */
import { parseArgs } from "node:util"
import { generateDirectory } from "./Codegen.js"

const usage = "Usage: deimos codegen --schemas DIR --out DIR"

const main = () => {
  const [command, ...rest] = process.argv.slice(2)
  if (command !== "codegen") {
    console.error(usage)
    return 2
  }
  let values: { schemas?: string | undefined; out?: string | undefined }
  try {
    values = parseArgs({ args: rest, options: { schemas: { type: "string" }, out: { type: "string" } } }).values
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${usage}`)
    return 2
  }
  if (values.schemas === undefined || values.out === undefined) {
    console.error(usage)
    return 2
  }
  try {
    const written = generateDirectory(values.schemas, values.out)
    console.log(`Generated ${written.length} files in ${values.out}`)
    return 0
  } catch (error) {
    console.error(`deimos codegen failed: ${error instanceof Error ? error.message : String(error)}`)
    return 1
  }
}

process.exitCode = main()
