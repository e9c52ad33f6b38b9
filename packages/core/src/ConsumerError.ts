/**
 * Errors of consumers: invalid definitions, and fatal handler errors that stop a consumer.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"

/**
 * A consumer definition that cannot run, e.g. `delivery: "inlineBatch"` without `handleBatch`. Raised when the
 * definition is made.
 *
 * @since 0.1.0
 */
export class ConsumerDefinitionError extends Data.TaggedError("ConsumerDefinitionError")<{
  readonly consumer: string
  readonly message: string
}> {}

/**
 * A handler error the error policy classed as fatal (or a retried error that ran out of retries). The consumer
 * stops without committing the message or batch.
 *
 * @since 0.1.0
 */
export class ConsumerFatalError extends Data.TaggedError("ConsumerFatalError")<{
  readonly consumer: string
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly retries: number
  readonly message: string
  /** The handler's failure, with its full cause. */
  readonly cause: Cause.Cause<unknown>
}> {}
