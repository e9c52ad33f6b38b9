/**
 * Errors from the Kafka driver, mapped at the edge: `retriable` says whether trying again may help; the driver's
 * error is kept as `cause`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * What was being done when the error happened.
 *
 * @since 0.1.0
 */
export type Reason = "Connect" | "Produce" | "Consume" | "Commit" | "Admin"

/**
 * @since 0.1.0
 */
export class KafkaError extends Data.TaggedError("KafkaError")<{
  readonly reason: Reason
  readonly message: string
  /** Whether trying again may help (a broker restart, a rebalance), as the driver classed it. */
  readonly retriable: boolean
  /** The broker's error name when there is one, e.g. `MESSAGE_TOO_LARGE`. */
  readonly code?: string | undefined
  /** The driver's error. */
  readonly cause?: unknown
}> {}

const codeOf = (cause: unknown): string | undefined => {
  let current = cause as { readonly type?: unknown; readonly cause?: unknown } | undefined
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    if (typeof current.type === "string") return current.type
    current = current.cause as typeof current
  }
  return undefined
}

const rootOf = (cause: unknown): unknown => {
  let current = cause as { readonly cause?: unknown } | undefined
  for (let depth = 0; depth < 5 && current?.cause !== undefined && current.cause !== null; depth++) {
    current = current.cause as typeof current
  }
  return current
}

const isRetriable = (cause: unknown): boolean => {
  const error = cause as { readonly retriable?: unknown; readonly name?: unknown } | undefined
  // a driver that gave up retrying reports "not retriable"; what it was retrying decides (as kafkajs does itself)
  if (error?.name === "KafkaJSNumberOfRetriesExceeded") {
    return (rootOf(cause) as { readonly retriable?: unknown } | undefined)?.retriable === true
  }
  return error?.retriable === true
}

/**
 * Maps anything a driver threw: the driver's own `retriable` flag and error type are kept.
 *
 * @since 0.1.0
 */
export const fromUnknown = (reason: Reason, context: string) => (cause: unknown): KafkaError => {
  const error = cause as { readonly message?: unknown; readonly retriable?: unknown } | undefined
  const detail = typeof error?.message === "string" ? error.message : String(cause)
  return new KafkaError({
    reason,
    retriable: isRetriable(cause),
    code: codeOf(cause),
    message: `${context}: ${detail}`,
    cause
  })
}
