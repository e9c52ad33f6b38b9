/**
 * Errors from the Kafka driver, mapped at the edge: `retriable` says whether trying again may help; the driver's
 * error is kept as `cause`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * @since 0.1.0
 */
export type Reason = "Connect" | "Produce" | "Consume" | "Commit" | "Admin"

/**
 * @since 0.1.0
 */
export class KafkaError extends Data.TaggedError("KafkaError")<{
  readonly reason: Reason
  readonly message: string
  readonly retriable: boolean
  readonly cause?: unknown
}> {}

/**
 * Maps anything a driver threw.
 *
 * @since 0.1.0
 */
export const fromUnknown = (reason: Reason, context: string) => (cause: unknown): KafkaError => {
  const error = cause as { readonly message?: unknown; readonly retriable?: unknown; readonly name?: unknown }
  const detail = typeof error?.message === "string" ? error.message : String(cause)
  return new KafkaError({
    reason,
    retriable: typeof error?.retriable === "boolean" ? error.retriable : false,
    message: `${context}: ${detail}`,
    cause
  })
}
