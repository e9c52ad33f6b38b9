/**
 * The `deimos` command line: the command list and `run`, which answers the process exit code (0 done or stopped by
 * SIGINT/SIGTERM, 1 a command failed, 2 a bad flag or missing configuration, with a message naming the fix).
 *
 * A command is one module under `commands/` exporting `command`; adding one is adding it to `commands`.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { CliError } from "./CliError.js"
import * as broker from "./commands/broker.js"
import * as codegen from "./commands/codegen.js"
import * as consoleCommand from "./commands/console.js"
import * as consume from "./commands/consume.js"
import * as eventsApi from "./commands/eventsApi.js"
import * as migrate from "./commands/migrate.js"
import * as offsets from "./commands/offsets.js"
import * as poll from "./commands/poll.js"
import * as relay from "./commands/relay.js"
import * as tail from "./commands/tail.js"

/**
 * Every command, in the order `deimos --help` lists them.
 *
 * @since 0.1.0
 */
export const commands = [
  broker.command,
  migrate.command,
  relay.command,
  poll.command,
  consume.command,
  eventsApi.command,
  consoleCommand.command,
  tail.command,
  offsets.command,
  codegen.command
] as const

/**
 * The root command.
 *
 * @since 0.1.0
 */
export const deimos = Command.make("deimos").pipe(
  Command.withDescription(
    "Deimos for Effect: run the dev broker, apply migrations, relay the outbox, run a module's pollers or " +
      "consumers, serve the events API and the web console, read topics, manage offsets and generate code. Flags override environment variables; each command's --help lists both."
  ),
  Command.withSubcommands(commands)
)

/**
 * Runs the command line `argv` (as `process.argv`: runtime, script, then the arguments) and answers the exit code.
 * A bad flag has been reported by the parser already; a `CliError` is reported here.
 *
 * @since 0.1.0
 */
export const run = (argv: ReadonlyArray<string>) =>
  Command.run(deimos, { name: "deimos", version: "0.1.0" })(argv).pipe(
    Effect.as(0),
    Effect.catchAll((error) => {
      if (ValidationError.isValidationError(error)) return Effect.succeed(2)
      if (error instanceof CliError) {
        return Effect.as(
          Console.error(error.reason === "Usage" ? `${error.message}\nSee deimos --help.` : error.message),
          error.exitCode
        )
      }
      return Effect.as(Console.error(`deimos failed: ${String(error)}`), 1)
    })
  )
