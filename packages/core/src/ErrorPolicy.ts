/**
 * The consumer error policy (REFERENCE §2, Deimos #25): each handler error is swallowed (logged, counted,
 * committed), retried with exponential backoff without committing, or fatal (the consumer stops). Decided from the
 * error's `_tag`, never from its message.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type * as DeimosConfig from "./DeimosConfig.js"

/**
 * What to do with a failed message or batch.
 *
 * @since 0.1.0
 */
export type Action = "swallow" | "retry" | "fatal"

/**
 * The tag a handler defect (a thrown exception, `Effect.die`) is classified under.
 *
 * @since 0.1.0
 */
export const DefectTag = "Defect"

/**
 * @since 0.1.0
 */
export interface ErrorPolicy<E, P, M> {
  /** Retry every error. @default DeimosConfig `reraiseErrors` (false) */
  readonly reraiseErrors?: boolean | undefined
  /** Error tags to retry with backoff (`"Defect"` for defects, `"SchemaError"` for undecodable messages). */
  readonly retryOn?: ReadonlyArray<string> | undefined
  /** Error tags that stop the consumer at once. */
  readonly fatalOn?: ReadonlyArray<string> | undefined
  /** Deimos's `fatal_error?`: when it returns true the error is retried instead of swallowed. */
  readonly fatalError?: ((error: E | unknown, payload: P, metadata: M) => boolean) | undefined
  /** Retry schedule: exponential from `min` to `max`; after `maxRetries` a retried error becomes fatal. */
  readonly backoff?: {
    readonly min?: Duration.DurationInput | undefined
    readonly max?: Duration.DurationInput | undefined
    readonly maxRetries?: number | undefined
  } | undefined
}

/**
 * The `_tag` of the first failure (or `"Defect"`) in a cause.
 *
 * @since 0.1.0
 */
export const tagOf = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string") {
      return error._tag
    }
    return "UnknownError"
  }
  return DefectTag
}

/**
 * The error in a cause: its first failure, else its first defect.
 *
 * @since 0.1.0
 */
export const errorOf = (cause: Cause.Cause<unknown>): unknown =>
  Option.getOrElse(
    Option.orElse(Cause.failureOption(cause), () => Cause.dieOption(cause)),
    () => Cause.squash(cause)
  )

/**
 * Classifies a failure.
 *
 * @since 0.1.0
 */
export const classify = <E, P, M>(
  policy: ErrorPolicy<E, P, M>,
  settings: DeimosConfig.Settings,
  cause: Cause.Cause<unknown>,
  payload: P,
  metadata: M
): Action => {
  const tag = tagOf(cause)
  if (policy.fatalOn?.includes(tag) === true) return "fatal"
  if (policy.reraiseErrors ?? settings.reraiseErrors) return "retry"
  if (policy.retryOn?.includes(tag) === true) return "retry"
  if (policy.fatalError !== undefined && policy.fatalError(errorOf(cause), payload, metadata)) return "retry"
  return "swallow"
}

/**
 * The resolved backoff of a policy.
 *
 * @since 0.1.0
 */
export const backoffOf = <E, P, M>(
  policy: ErrorPolicy<E, P, M>,
  settings: DeimosConfig.Settings
): DeimosConfig.Backoff => ({
  min: policy.backoff?.min === undefined ? settings.backoff.min : Duration.decode(policy.backoff.min),
  max: policy.backoff?.max === undefined ? settings.backoff.max : Duration.decode(policy.backoff.max),
  maxRetries: policy.backoff?.maxRetries ?? settings.backoff.maxRetries
})

/**
 * The wait before retry number `attempt` (0-based): `min * 2^attempt`, capped at `max`.
 *
 * @since 0.1.0
 */
export const delay = (backoff: DeimosConfig.Backoff, attempt: number): Duration.Duration =>
  Duration.min(backoff.max, Duration.times(backoff.min, Math.pow(2, Math.min(attempt, 40))))
