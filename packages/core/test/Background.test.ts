import { describe, expect, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Ref from "effect/Ref"
import * as Background from "../src/Background.js"

class Fatal extends Data.TaggedError("Fatal")<{ readonly at: number }> {}

describe("Background", () => {
  it.effect("fork finishes building; launch ends with the loop's error and closes the other layers", () =>
    Effect.gen(function*() {
      const fail = yield* Deferred.make<void>()
      const closed = yield* Ref.make<Array<string>>([])
      const loop = Background.fork(
        "loop",
        Effect.zipRight(Deferred.await(fail), Effect.fail(new Fatal({ at: 7 })))
      )
      // another layer of the program, which depends on nothing of the loop and must be closed when it fails
      const other = Layer.scopedDiscard(Effect.addFinalizer(() => Ref.update(closed, (c) => [...c, "other"])))
      const built = yield* Deferred.make<void>()
      const after = Layer.effectDiscard(Deferred.succeed(built, undefined))
      const program = yield* Effect.fork(Background.launch(Layer.mergeAll(loop, other).pipe(Layer.provideMerge(after))))
      // the layer finished building (the loop runs in the background)
      yield* Deferred.await(built)
      yield* Deferred.succeed(fail, undefined)
      const exit = yield* Fiber.await(program)
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : exit).toEqual(new Fatal({ at: 7 }))
      expect(yield* Ref.get(closed)).toEqual(["other"])
    }))

  it.effect("launch runs until interrupted while the loop runs", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const program = yield* Effect.fork(
        Background.launch(Background.fork("loop", Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)))
      )
      yield* Deferred.await(started)
      expect(Exit.isInterrupted(yield* Fiber.interrupt(program))).toBe(true)
    }))

  it.effect("outside launch, a loop that fails is logged at ERROR, naming it", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const logger = Logger.make(({ cause, logLevel, message }) => {
        logs.push(`${logLevel.label} ${String(message)} ${cause._tag}`)
      })
      yield* Effect.gen(function*() {
        yield* Layer.build(Background.fork("Consumers", Effect.fail(new Fatal({ at: 1 }))))
        // the loop runs in its own fiber: wait (in the layer's scope) until it has reported
        yield* Effect.yieldNow().pipe(Effect.repeat({ until: () => logs.length > 0 }))
      }).pipe(Effect.scoped, Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      expect(logs.some((l) => l.startsWith("ERROR") && l.includes("Consumers stopped with an error"))).toBe(true)
    }))
})
