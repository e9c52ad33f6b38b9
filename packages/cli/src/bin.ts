/**
 * The `deimos` executable: runs the command line on Node, logs on standard error (standard output is the
 * commands' data), and exits with the code `Cli.run` answers; SIGINT/SIGTERM interrupt the command, whose scopes
 * close (connections, consumers, servers), and exit 0.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as Cli from "./Cli.js"

const program = Cli.run(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.stringLogger)))
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  // logs go to standard error only (the logger above): standard output is the commands' data
  disablePrettyLogger: true,
  teardown: (exit, onExit) =>
    onExit(
      Exit.isSuccess(exit)
        ? (typeof exit.value === "number" ? exit.value : 0)
        : Cause.isInterruptedOnly(exit.cause)
        ? 0
        : 1
    )
})
