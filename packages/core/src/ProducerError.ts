/**
 * Errors of producers and producer backends.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * Why publishing failed.
 * - `MissingKey`: the key config needs a key and none was given.
 * - `UnexpectedKey`: a key was given to a producer with `keyConfig: { none: true }`.
 * - `Send`: the backend could not deliver the messages (see `retriable`).
 *
 * @since 0.1.0
 */
export type Reason = "MissingKey" | "UnexpectedKey" | "Send"

/**
 * @since 0.1.0
 */
export class ProducerError extends Data.TaggedError("ProducerError")<{
  readonly reason: Reason
  readonly message: string
  readonly producer: string
  readonly topic: string
  /** True when sending again may succeed (broker unavailable, leader moved, timeouts). */
  readonly retriable: boolean
  /** How many messages were not sent, for `Send` errors. */
  readonly failedCount?: number | undefined
  readonly cause?: unknown
}> {}
