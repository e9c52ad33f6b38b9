/**
 * Errors of the checkpoint: a stored row that is not there, and a retry of a failure that did not succeed.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * No event or failure with that id.
 *
 * @since 0.1.0
 */
export class NotFound extends Data.TaggedError("NotFound")<{
  readonly kind: "event" | "failure"
  readonly id: string
  readonly message: string
}> {}

/**
 * Why a retry of a failure did not succeed.
 * - `HandlerFailed`: the handler failed again (the failure stays, nothing it wrote was kept).
 * - `NoCheckpoint`: no checkpoint given to the API handles the failure's consumer.
 *
 * @since 0.1.0
 */
export type RetryReason = "HandlerFailed" | "NoCheckpoint"

/**
 * A retry of a failure that did not succeed; the failure row stays as it was.
 *
 * @since 0.1.0
 */
export class RetryError extends Data.TaggedError("RetryError")<{
  readonly reason: RetryReason
  readonly failureId: string
  readonly message: string
  readonly cause?: unknown
}> {}
