/**
 * The CLI's error: a usage or configuration mistake (exit code 2, the message names the fix) or a command that
 * failed while running (exit code 1).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * @since 0.1.0
 * @category errors
 */
export class CliError extends Data.TaggedError("CliError")<{
  /** `Usage`: a bad flag or value; `Config`: missing or invalid configuration; `Failed`: the command failed. */
  readonly reason: "Usage" | "Config" | "Failed"
  readonly message: string
  readonly cause?: unknown
}> {
  /** The process exit code for this error: 2 for usage and configuration, 1 otherwise. */
  get exitCode(): 1 | 2 {
    return this.reason === "Failed" ? 1 : 2
  }
}
