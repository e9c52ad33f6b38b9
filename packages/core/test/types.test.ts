/**
 * Compile-time guarantees: `tsc -b` builds this file, and every `@ts-expect-error` below must meet an error, so a
 * typo'd error-policy tag that compiled would fail the build. The runtime assertions only keep vitest honest.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Consumer from "../src/Consumer.js"
import * as DeimosConfig from "../src/DeimosConfig.js"
import * as MockBackend from "../src/MockBackend.js"
import * as Producer from "../src/Producer.js"
import * as ProducerBackend from "../src/ProducerBackend.js"
import * as Tombstone from "../src/Tombstone.js"
import { Widget } from "./fixtures.js"

class NotFound extends Data.TaggedError("NotFound")<{ readonly id: number }> {}
class Unavailable extends Data.TaggedError("Unavailable")<{}> {}

const lookup = (id: number): Effect.Effect<void, NotFound | Unavailable> =>
  id < 0 ? Effect.fail(new NotFound({ id })) : id === 0 ? Effect.fail(new Unavailable()) : Effect.void

const base = { topic: "orders", groupId: "g", schema: Widget, keyConfig: { field: "id" } } as const

describe("error-policy tags are checked by the compiler", () => {
  it("accepts the handler's tags, SchemaError and Defect", () => {
    const consumer = Consumer.make({
      ...base,
      handle: (widget) => lookup(widget.id),
      errorPolicy: { retryOn: ["Unavailable"], fatalOn: ["SchemaError", "Defect"], deadLetterOn: ["NotFound"] }
    })
    expect(consumer.errorPolicy.retryOn).toEqual(["Unavailable"])
  })

  it("refuses a typo'd tag and a tag the handler cannot fail with", () => {
    Consumer.make({
      ...base,
      // @ts-expect-error "Unavailabel" is not a tag of NotFound | Unavailable
      handle: (widget) => lookup(widget.id),
      errorPolicy: { retryOn: ["Unavailabel"] }
    })
    Consumer.make({
      ...base,
      // @ts-expect-error a handler that cannot fail has no "NotFound" to retry
      handle: () => Effect.void,
      errorPolicy: { retryOn: ["NotFound"] }
    })
    Consumer.make({
      ...base,
      delivery: "inlineBatch",
      // @ts-expect-error the same check for batch handlers
      handleBatch: (widgets) => lookup(widgets.length),
      errorPolicy: { fatalOn: ["DatabaseUnavailable"] }
    })
    expect(true).toBe(true)
  })

  it("types decide's error from the handler (policy written after the handler)", () => {
    const consumer = Consumer.make({
      ...base,
      handle: (widget) => lookup(widget.id),
      errorPolicy: {
        decide: (error, widget) =>
          error._tag === "NotFound" && error.id < -100 ? "deadLetter" : widget?.name === "x" ? "retry" : undefined
      }
    })
    expect(typeof consumer.errorPolicy.decide).toBe("function")
  })
})

describe("payload types", () => {
  it("a handler gets A; with tombstones: true it gets A | Tombstone<K>", () => {
    Consumer.make({
      ...base,
      handle: (widget) => Effect.sync(() => widget.name.length)
    })
    Consumer.make({
      ...base,
      tombstones: true,
      handle: (widget) =>
        Effect.sync(() => {
          // @ts-expect-error a Tombstone has no name: narrow first
          void widget.name
          if (Tombstone.isTombstone(widget)) {
            const key: number = widget.key
            void key
          } else {
            void widget.name.length
          }
        })
    })
    expect(true).toBe(true)
  })
})

describe("settings that decide where data goes are required", () => {
  it("a program that publishes needs DeimosConfig itself: giving it to the backend layer only does not compile", () => {
    const widgets = Producer.make({ topic: "widgets", schema: Widget, keyConfig: { field: "id" } })
    const program = widgets.publish({ id: 1, name: "bolt" })
    // the settings reach the backend layer, not the program
    const backendOnly = Layer.merge(
      ProducerBackend.layerTest.pipe(Layer.provide(DeimosConfig.layer({ topicPrefix: "prod." }))),
      MockBackend.layerMockValidating
    )
    // @ts-expect-error DeimosConfig is still required: the prefix cannot silently fall back to ""
    const _wrong: Effect.Effect<void, unknown, never> = program.pipe(Effect.provide(backendOnly))
    const _right: Effect.Effect<void, unknown, never> = program.pipe(
      Effect.provide(Layer.merge(backendOnly, DeimosConfig.layer({ topicPrefix: "prod." })))
    )
    expect(Effect.isEffect(_right)).toBe(true)
  })
})
