/**
 * User modules for `deimos consume` and `deimos poll`: a JavaScript or TypeScript module, by a path relative to the
 * working directory, imported into the CLI's process. A TypeScript module needs a loader in the process: run the
 * bin with `node --import tsx` (e.g. `NODE_OPTIONS="--import tsx" npx deimos consume src/consumers.ts`).
 *
 * @since 0.1.0
 */
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { CliError } from "./CliError.js"
import * as Settings from "./Settings.js"

/**
 * A module's exports.
 *
 * @since 0.1.0
 */
export type Exports = Readonly<Record<string, unknown>>

const messageOf = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : String(cause)

/**
 * Imports the module at `file` (relative to the working directory). A file that does not exist, or that cannot be
 * imported (a TypeScript file without a loader, an error thrown while it loads), is a `CliError` of reason `Usage`
 * naming the module and the fix.
 *
 * @since 0.1.0
 */
export const load = (file: string): Effect.Effect<Exports, CliError> =>
  Effect.gen(function*() {
    const absolute = path.resolve(process.cwd(), file)
    if (!fs.existsSync(absolute) || !fs.statSync(absolute).isFile()) {
      return yield* new CliError({
        reason: "Usage",
        message: `Module ${file} not found (looked for ${absolute}): give a path relative to the working directory.`
      })
    }
    return yield* Effect.tryPromise({
      try: () => import(pathToFileURL(absolute).href) as Promise<Exports>,
      catch: (cause) => {
        const code = typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined
        const typescript = /\.[cm]?tsx?$/.test(absolute)
        return new CliError({
          reason: "Usage",
          message: typescript && code === "ERR_UNKNOWN_FILE_EXTENSION"
            ? `Cannot import ${file}: a TypeScript module needs a loader; run the bin with node --import tsx ` +
              `(e.g. NODE_OPTIONS="--import tsx" deimos …).`
            : `Cannot import ${file}: ${messageOf(cause)}`,
          cause
        })
      }
    })
  })

/**
 * The module's optional export `layer`: what its handlers need. Not a `Layer` is a `CliError` of reason `Usage`.
 *
 * @since 0.1.0
 */
export const layerOf = (
  file: string,
  exports: Exports
): Effect.Effect<Layer.Layer<never, unknown, unknown> | undefined, CliError> => {
  const value = exports.layer
  if (value === undefined) return Effect.succeed(undefined)
  if (!Layer.isLayer(value)) {
    return Effect.fail(
      new CliError({
        reason: "Usage",
        message: `The export layer of ${file} is not a Layer: export the Layer that provides what the handlers need.`
      })
    )
  }
  return Effect.succeed(value as Layer.Layer<never, unknown, unknown>)
}

/**
 * An error of the user's layer or handlers as a `CliError` of reason `Failed`; a configuration error (a setting the
 * command reads late, e.g. the progress settings) as one of reason `Config`, naming the variable and its flag.
 *
 * @since 0.1.0
 */
export const failure = (what: string, flags: ReadonlyArray<Settings.Setting> = []) => (error: unknown): CliError =>
  error instanceof CliError
    ? error
    : ConfigError.isConfigError(error)
    ? Settings.fromConfigError(error, flags)
    : new CliError({ reason: "Failed", message: `${what}: ${messageOf(error)}`, cause: error })

/**
 * A defect of the user's code (a service its layer does not give, a handler that throws) as a `CliError` of reason
 * `Failed`, so that it is reported rather than ending the process silently.
 *
 * @since 0.1.0
 */
export const defects = (what: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | CliError, R> =>
  Effect.catchAllDefect(
    effect,
    (defect) => Effect.fail(new CliError({ reason: "Failed", message: `${what}: ${messageOf(defect)}`, cause: defect }))
  )
