/**
 * The toolkit's errors as the CLI's: a database or Kafka error that stops a command is a `CliError` of reason
 * `Failed` (exit code 1) whose message says what failed.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { CliError } from "./CliError.js"

/**
 * Any tagged error with a message (`DatabaseError`, `KafkaError`, `SchemaError`, …) as a `CliError` of reason
 * `Failed`, prefixed with what the command was doing; `CliError`s pass unchanged.
 *
 * @since 0.1.0
 */
export const failed = (what: string) =>
<A, E extends { readonly _tag: string; readonly message: string }, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, CliError, R> =>
  Effect.mapError(effect, (error) =>
    error instanceof CliError ? error : new CliError({
      reason: "Failed",
      message: `${what}: ${error.message}`,
      cause: error
    }))
