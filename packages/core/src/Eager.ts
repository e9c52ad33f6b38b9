/**
 * Eager effects for the hot paths. An `Exit` is an `Effect` that is already done: schema backends answer with
 * `Exit`s where they can (the mock and Avro backends always do for cached schemas), and these helpers continue
 * synchronously on an `Exit` and fall back to the fiber runtime on any other effect. The producer and consumer
 * pipelines use them so that encoding or decoding a batch costs plain function calls, not fiber steps, while a
 * backend that must do I/O (a registry lookup) still works unchanged.
 *
 * Eager means the continuation runs when the effect is built, not when it is run: use these only where the
 * result is run at once (as the pipelines do), never to build an effect that is stored and run later.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/**
 * `f` applied now when `self` is a successful `Exit`; `self` itself when it is a failed one; `Effect.flatMap`
 * otherwise.
 *
 * @since 0.1.0
 */
export const flatMap = <A, E, R, B, E2, R2>(
  self: Effect.Effect<A, E, R>,
  f: (a: A) => Effect.Effect<B, E2, R2>
): Effect.Effect<B, E | E2, R | R2> => {
  if (!Exit.isExit(self)) return Effect.flatMap(self, f)
  const exit = self as Exit.Exit<A, E>
  return Exit.isSuccess(exit) ? f(exit.value) : Exit.failCause(exit.cause)
}

/**
 * `f` applied now when `self` is a successful `Exit`; `Effect.map` otherwise.
 *
 * @since 0.1.0
 */
export const map = <A, E, R, B>(self: Effect.Effect<A, E, R>, f: (a: A) => B): Effect.Effect<B, E, R> => {
  if (!Exit.isExit(self)) return Effect.map(self, f)
  const exit = self as Exit.Exit<A, E>
  return Exit.isSuccess(exit) ? Exit.succeed(f(exit.value)) : Exit.failCause(exit.cause)
}

/**
 * `f` over every item in order, stopping at the first failure (as `Effect.forEach`): an `Exit` when every result
 * was one, else an effect that runs the rest.
 *
 * @since 0.1.0
 */
export const forEach = <A, B, E, R>(
  items: ReadonlyArray<A>,
  f: (item: A, index: number) => Effect.Effect<B, E, R>
): Effect.Effect<Array<B>, E, R> => {
  const out = new Array<B>(items.length)
  const from = (start: number): Effect.Effect<Array<B>, E, R> => {
    for (let i = start; i < items.length; i++) {
      const result = f(items[i], i)
      if (!Exit.isExit(result)) {
        return Effect.flatMap(result, (b) => {
          out[i] = b
          return from(i + 1)
        })
      }
      const exit = result as Exit.Exit<B, E>
      if (Exit.isFailure(exit)) return Exit.failCause(exit.cause)
      out[i] = exit.value
    }
    return Exit.succeed(out)
  }
  return from(0)
}

/**
 * The value of `f()` as an `Exit`; a throw is a defect (as `Effect.sync`).
 *
 * @since 0.1.0
 */
export const sync = <A>(f: () => A): Exit.Exit<A> => {
  try {
    return Exit.succeed(f())
  } catch (defect) {
    return Exit.die(defect)
  }
}
