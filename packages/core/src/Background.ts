/**
 * Background loops as layers. A layer that runs something forever (consumers, a relay, pollers) forks it into the
 * layer's scope with {@link fork} and finishes building, as `HttpServer.serve` does, so it composes with other
 * layers; closing the scope stops it. {@link launch} is `Layer.launch` for such layers: it runs until interrupted
 * (SIGTERM under `NodeRuntime.runMain`) or until a loop fails, and then ends with that loop's error, so a fatal
 * consumer error still ends the program, with a typed error and a non-zero exit.
 *
 * A forked loop cannot reach the fiber that awaits the program on its own (layers are built in fibers of their
 * own), so it reports to the {@link Supervisor} in context: `launch` provides one; without it (a plain
 * `Layer.launch`, a test's `it.layer`), a failure is logged at ERROR and the loop stays stopped.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** @since 0.1.0 */
export const TypeId: unique symbol = Symbol.for("@deimos/core/Background/Running")

/**
 * What a background layer provides: the type of the errors its loop can end with (for {@link launch}).
 *
 * @since 0.1.0
 */
export interface Running<E> {
  readonly [TypeId]: { readonly _E: (_: never) => E }
}

/**
 * The errors the background loops of a layer's output can end with.
 *
 * @since 0.1.0
 */
export type ErrorOf<A> = A extends Running<infer E> ? E : never

/**
 * Where a loop that failed reports its cause.
 *
 * @since 0.1.0
 * @category tags
 */
export class Supervisor extends Context.Reference<Supervisor>()("@deimos/core/Background/Supervisor", {
  defaultValue: (): { readonly failed: (name: string, cause: Cause.Cause<unknown>) => Effect.Effect<void> } => ({
    failed: (name, cause) =>
      Effect.logError(
        `${name} stopped with an error; nothing restarts it (run the program with Background.launch)`,
        cause
      )
  })
}) {}

const runningTag = <E>() => Context.GenericTag<Running<E>, "running">("@deimos/core/Background/Running")

/**
 * A layer that forks `loop` into its scope and finishes building; a failure of the loop goes to the
 * {@link Supervisor}; closing the scope interrupts it.
 *
 * @since 0.1.0
 * @category layers
 */
export const fork = <E, R>(name: string, loop: Effect.Effect<never, E, R>): Layer.Layer<Running<E>, never, R> =>
  Layer.scoped(
    runningTag<E>(),
    Effect.gen(function*() {
      const supervisor = yield* Supervisor
      yield* loop.pipe(
        Effect.catchAllCause((cause) => supervisor.failed(name, cause)),
        Effect.forkScoped
      )
      return "running" as const
    })
  )

/**
 * Builds the layer and runs until interrupted, or until a background loop it forked fails: then the layer's scope
 * closes (everything else stops gracefully) and the effect fails with that loop's error.
 *
 * @since 0.1.0
 */
export const launch = <A, E, R>(layer: Layer.Layer<A, E, R>): Effect.Effect<never, E | ErrorOf<A>, R> =>
  Effect.gen(function*() {
    const failure = yield* Deferred.make<never, ErrorOf<A>>()
    const supervisor = {
      failed: (_name: string, cause: Cause.Cause<unknown>) =>
        Deferred.failCause(failure, cause as Cause.Cause<ErrorOf<A>>).pipe(Effect.asVoid)
    }
    return yield* Effect.scoped(
      Effect.zipRight(
        Layer.build(layer).pipe(Effect.provideService(Supervisor, supervisor)),
        Deferred.await(failure)
      )
    )
  })
