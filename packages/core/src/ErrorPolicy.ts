/**
 * The consumer error policy: each failed attempt at a message (or batch) is swallowed (logged, counted,
 * committed), retried after an exponential backoff without committing, sent to a dead-letter topic (then
 * committed), or fatal (the consumer stops there). The decision comes from the error's `_tag`, which the compiler
 * checks against the handler's error type, or from a `decide` function that sees the error and the payload; never
 * from an error's message. Interruption is never caught.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { ConsumerFatalError } from "./ConsumerError.js"
import type * as DeimosConfig from "./DeimosConfig.js"
import * as Instrumentation from "./Instrumentation.js"
import type { ProducerError } from "./ProducerError.js"
import type { SchemaError } from "./SchemaError.js"

/**
 * What to do with a failed attempt.
 *
 * @since 0.1.0
 */
export type Action = "swallow" | "retry" | "deadLetter" | "fatal"

/**
 * A handler defect (a thrown exception, `Effect.die`), as the policy sees it.
 *
 * @since 0.1.0
 */
export interface Defect {
  readonly _tag: "Defect"
  readonly defect: unknown
}

/**
 * The tag of an error type: its `_tag`, or `"UnknownError"` for errors without one.
 *
 * @since 0.1.0
 */
export type ErrorTag<E> = E extends { readonly _tag: infer T extends string } ? T : "UnknownError"

/**
 * The tags a policy can name for a handler failing with `E`: its errors' tags, `"SchemaError"` (a message that
 * cannot be decoded) and `"Defect"`.
 *
 * @since 0.1.0
 */
export type Tag<E> = ErrorTag<E> | "SchemaError" | "Defect"

/**
 * What failed: the handler's error, the schema backend's (undecodable bytes) or a defect.
 *
 * @since 0.1.0
 */
export type Failure<E> = E | SchemaError | Defect

/**
 * The attempt that failed, as `decide` sees it.
 *
 * @since 0.1.0
 */
export interface Attempt {
  readonly consumer: string
  readonly topic: string
  readonly partition: number
  /** The message's offset (a batch's first). */
  readonly offset: string
  /** Retries before this attempt. */
  readonly retryCount: number
}

/**
 * Unknown at compile time when every tag in `T` is one the handler can fail with; otherwise a type that names the
 * others, so that a consumer whose policy names a tag its handler cannot produce (a typo) does not compile. It is
 * checked on the handler's return type, where the handler's error type is known (checking it where the tags are
 * written would make TypeScript fix the handler's error type before it has seen the handler).
 *
 * @since 0.1.0
 */
export type CheckTags<E, T> = [Exclude<T, Tag<E>>] extends [never] ? unknown
  : { readonly "errorPolicy names error tags the handler cannot fail with": Exclude<T, Tag<E>> }

/**
 * An error policy for a handler that fails with `E` and receives `P`; `T` are the tags it names (checked against
 * `E` by `Consumer.make`).
 *
 * @since 0.1.0
 */
export interface ErrorPolicy<E, P, T extends string = Tag<E>> {
  /** Retry every error (Deimos's `reraise_errors`). @default DeimosConfig `reraiseErrors` (false) */
  readonly reraiseErrors?: boolean | undefined
  /** Tags retried with backoff. */
  readonly retryOn?: ReadonlyArray<T> | undefined
  /** Tags sent to the dead-letter topic, then committed. */
  readonly deadLetterOn?: ReadonlyArray<T> | undefined
  /** Tags that stop the consumer at once. */
  readonly fatalOn?: ReadonlyArray<T> | undefined
  /**
   * Decides from the error and the payload (`undefined` when the message could not be decoded); `undefined` falls
   * back to the tag lists. Asked first. In `Consumer.make`, write the policy after the handler when it has `decide`,
   * so that the error type is known when `decide` is typed.
   */
  // a method (its parameters are bivariant): a consumer whose handler cannot fail is still a `Consumer.Any`
  decide?(error: Failure<E>, payload: P | undefined, attempt: Attempt): Action | undefined
  /** Retry schedule: exponential from `min` to `max`. @default DeimosConfig `backoff` (1 s to 60 s, forever) */
  readonly backoff?: {
    readonly min?: Duration.DurationInput | undefined
    readonly max?: Duration.DurationInput | undefined
    /** Retries before giving up (see `exhausted`). @default forever */
    readonly maxRetries?: number | undefined
  } | undefined
  /** What a retried error becomes once `maxRetries` are used up. @default "fatal" */
  readonly exhausted?: "fatal" | "deadLetter" | undefined
  /** Where dead letters go. @default `<topic>.dlq` (the full topic, prefix included) */
  readonly deadLetterTopic?: ((topic: string) => string) | undefined
}

/**
 * Completes when the runtime stops the consumer. A retry backoff is raced against it: a message waiting to be
 * retried when the consumer stops is given up at once (interrupted, left uncommitted, delivered again after the
 * restart) instead of holding the shutdown for its whole grace period. By default it never completes (tests, and
 * runtimes that do not stop).
 *
 * @since 0.1.0
 * @category tags
 */
export class Stopping extends Context.Reference<Stopping>()("@deimos/core/ErrorPolicy/Stopping", {
  defaultValue: (): Effect.Effect<void> => Effect.never
}) {}

/**
 * The `_tag` of the first failure in a cause, `"UnknownError"` for a failure without one, `"Defect"` when it holds
 * no failure.
 *
 * @since 0.1.0
 */
export const tagOf = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) return "Defect"
  const error = failure.value
  return typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : "UnknownError"
}

/**
 * The error of a cause as the policy sees it: its first failure, else a {@link Defect} holding its first defect.
 *
 * @since 0.1.0
 */
export const failureOf = (cause: Cause.Cause<unknown>): Failure<unknown> => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return failure.value
  return {
    _tag: "Defect",
    defect: Option.getOrElse(Cause.dieOption(cause), () => Cause.squash(cause))
  }
}

/**
 * The retry schedule in force: exponential from `min` to `max`, `maxRetries` retries (`undefined`: forever).
 *
 * @since 0.1.0
 */
export interface Backoff {
  readonly min: Duration.Duration
  readonly max: Duration.Duration
  readonly maxRetries: number | undefined
}

/**
 * The backoff of a policy, its settings' defaults filled in.
 *
 * @since 0.1.0
 */
export const backoffOf = <E, P, T extends string>(
  policy: ErrorPolicy<E, P, T>,
  settings: DeimosConfig.Settings
): Backoff => ({
  min: policy.backoff?.min === undefined ? settings.backoff.min : Duration.decode(policy.backoff.min),
  max: policy.backoff?.max === undefined ? settings.backoff.max : Duration.decode(policy.backoff.max),
  maxRetries: policy.backoff?.maxRetries ?? settings.backoff.maxRetries
})

/**
 * The wait before retry number `retry` (0-based): `min * 2^retry`, capped at `max`.
 *
 * @since 0.1.0
 */
export const delay = (backoff: Backoff, retry: number): Duration.Duration =>
  Duration.min(backoff.max, Duration.times(backoff.min, Math.pow(2, Math.min(retry, 40))))

/**
 * The action for a failure: `decide` first, then `fatalOn`, `deadLetterOn`, `reraiseErrors` (retry all),
 * `retryOn`; otherwise swallow.
 *
 * @since 0.1.0
 */
export const classify = <E, P, T extends string>(
  policy: ErrorPolicy<E, P, T>,
  settings: DeimosConfig.Settings,
  cause: Cause.Cause<unknown>,
  payload: P | undefined,
  attempt: Attempt
): Action => {
  if (policy.decide !== undefined) {
    const decided = policy.decide(failureOf(cause) as Failure<E>, payload, attempt)
    if (decided !== undefined) return decided
  }
  const tag = tagOf(cause) as T
  if (policy.fatalOn?.includes(tag) === true) return "fatal"
  if (policy.deadLetterOn?.includes(tag) === true) return "deadLetter"
  if (policy.reraiseErrors ?? settings.reraiseErrors) return "retry"
  if (policy.retryOn?.includes(tag) === true) return "retry"
  return "swallow"
}

/**
 * A policy bound to a consumer and its settings, as {@link run} applies it.
 *
 * @since 0.1.0
 */
export interface Bound<P> {
  readonly consumer: string
  readonly policy: ErrorPolicy<unknown, P, string>
  readonly settings: DeimosConfig.Settings
  readonly backoff: Backoff
}

/**
 * Binds a policy once (per consumer and settings); with the `skipBackoff` setting, retries do not wait.
 *
 * @since 0.1.0
 */
export const bind = <E, P, T extends string>(
  consumer: string,
  policy: ErrorPolicy<E, P, T>,
  settings: DeimosConfig.Settings
): Bound<P> => ({
  consumer,
  policy: policy as ErrorPolicy<unknown, P, string>,
  settings,
  backoff: settings.skipBackoff
    ? { min: Duration.zero, max: Duration.zero, maxRetries: backoffOf(policy, settings).maxRetries }
    : backoffOf(policy, settings)
})

/**
 * Where an attempt runs; the body fills `payload` in once it has decoded it, for `decide`.
 *
 * @since 0.1.0
 */
export interface Target<P> {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  payload: P | undefined
}

/**
 * Sends the messages of a given-up attempt to the dead-letter topic.
 *
 * @since 0.1.0
 */
export type DeadLetterSend<T> = (target: T, cause: Cause.Cause<unknown>, retryCount: number) => Effect.Effect<
  void,
  ProducerError
>

const fatal = <P>(bound: Bound<P>, target: Target<P>, cause: Cause.Cause<unknown>, retries: number, why: string) =>
  Effect.fail(
    new ConsumerFatalError({
      consumer: bound.consumer,
      topic: target.topic,
      partition: target.partition,
      offset: target.offset,
      retries,
      cause,
      message: `Consumer ${bound.consumer} stopped at ${target.topic}[${target.partition}]@${target.offset}: ${why}: ${
        Cause.pretty(cause).split("\n")[0]
      }`
    })
  )

const log = <P>(bound: Bound<P>, target: Target<P>, message: string, cause: Cause.Cause<unknown>, retryCount: number) =>
  Effect.logError(message, cause).pipe(Effect.annotateLogs({
    consumer: bound.consumer,
    topic: target.topic,
    partition: target.partition,
    offset: target.offset,
    retryCount,
    errorTag: tagOf(cause)
  }))

const waitToRetry = (wait: Duration.Duration) =>
  Effect.raceFirst(
    Effect.sleep(wait),
    Effect.flatMap(Stopping, (stopping) => Effect.zipRight(stopping, Effect.interrupt))
  )

/** Sends a given-up attempt to the dead-letter topic: again while it cannot be sent yet, fatal when it never can. */
const sendToDeadLetters = <P, T extends Target<P>>(
  bound: Bound<P>,
  target: T,
  deadLetter: DeadLetterSend<T> | undefined,
  cause: Cause.Cause<unknown>,
  retryCount: number
): Effect.Effect<void, ConsumerFatalError> => {
  if (deadLetter === undefined) {
    return fatal(
      bound,
      target,
      cause,
      retryCount,
      "dead letter asked for, but there is no ProducerBackend to send it with"
    )
  }
  const attemptSend = (sends: number): Effect.Effect<void, ConsumerFatalError> =>
    Effect.catchAll(deadLetter(target, cause, retryCount), (error) =>
      error.retriable
        ? Effect.zipRight(
          Effect.logWarning(`The dead letter could not be sent; trying again: ${error.message}`),
          Effect.zipRight(waitToRetry(delay(bound.backoff, sends)), Effect.suspend(() => attemptSend(sends + 1)))
        )
        : fatal(bound, target, Cause.fail(error), retryCount, "the dead letter could not be sent"))
  return Effect.zipRight(
    log(bound, target, "Handler error; sending the message to the dead-letter topic", cause, retryCount),
    attemptSend(0)
  )
}

/** What follows a failed attempt: the action's effect; for a retry, the next attempt after the backoff. */
const onFailure = <P, T extends Target<P>, R>(
  bound: Bound<P>,
  target: T,
  body: (target: T, retryCount: number) => Effect.Effect<void, unknown, R>,
  deadLetter: DeadLetterSend<T> | undefined,
  retryCount: number,
  cause: Cause.Cause<unknown>
): Effect.Effect<void, ConsumerFatalError, R> => {
  if (Cause.isInterrupted(cause)) return Effect.failCause(cause as Cause.Cause<never>)
  const { backoff, consumer } = bound
  const attempt: Attempt = {
    consumer,
    topic: target.topic,
    partition: target.partition,
    offset: target.offset,
    retryCount
  }
  let action = classify(bound.policy, bound.settings, cause, target.payload, attempt)
  const exhausted = action === "retry" && backoff.maxRetries !== undefined && retryCount >= backoff.maxRetries
  if (exhausted) action = bound.policy.exhausted ?? "fatal"
  const event = Instrumentation.emit({
    _tag: "HandlerError",
    consumer,
    topic: target.topic,
    partition: target.partition,
    offset: target.offset,
    action,
    error: failureOf(cause)
  })
  switch (action) {
    case "swallow":
      return Effect.zipRight(
        event,
        log(bound, target, "Handler error swallowed; the offset will be committed", cause, retryCount)
      )
    case "deadLetter":
      return Effect.zipRight(event, sendToDeadLetters(bound, target, deadLetter, cause, retryCount))
    case "fatal":
      return event.pipe(
        Effect.zipRight(
          log(
            bound,
            target,
            exhausted
              ? "Handler error out of retries; stopping the consumer"
              : "Fatal handler error; stopping the consumer",
            cause,
            retryCount
          )
        ),
        Effect.zipRight(
          fatal(
            bound,
            target,
            cause,
            retryCount,
            exhausted ? `still failing after ${retryCount} retries` : "fatal error"
          )
        )
      )
    case "retry": {
      const wait = delay(backoff, retryCount)
      return event.pipe(
        Effect.zipRight(log(bound, target, `Handler error; retrying in ${Duration.format(wait)}`, cause, retryCount)),
        Effect.zipRight(Instrumentation.emit({
          _tag: "RetryHandlerError",
          consumer,
          topic: target.topic,
          partition: target.partition,
          offset: target.offset,
          retryCount,
          waitMillis: Duration.toMillis(wait)
        })),
        Effect.zipRight(waitToRetry(wait)),
        Effect.zipRight(Effect.suspend(() => run(bound, target, body, deadLetter, retryCount + 1)))
      )
    }
  }
}

/**
 * Runs `body(target, retryCount)` under a bound policy until it succeeds, is swallowed, is dead-lettered (with
 * `deadLetter`, which sends the target's messages; `undefined` when there is nowhere to send them, which makes the
 * action fatal) or is fatal (`ConsumerFatalError`). Interruption passes through, and a retry backoff ends at once
 * when {@link Stopping} completes. This runs per message, with `body` and `deadLetter` made once per consumer: it
 * allocates one closure; the failure path allocates the rest.
 *
 * @since 0.1.0
 */
export const run = <P, T extends Target<P>, R>(
  bound: Bound<P>,
  target: T,
  body: (target: T, retryCount: number) => Effect.Effect<void, unknown, R>,
  deadLetter: DeadLetterSend<T> | undefined,
  retryCount = 0
): Effect.Effect<void, ConsumerFatalError, R> =>
  Effect.catchAllCause(
    body(target, retryCount),
    (cause) => onFailure(bound, target, body, deadLetter, retryCount, cause)
  )
