import { AvroBackend } from "@deimos/avro"
import { Consumer, Producer, SchemaBackend, SchemaRef } from "@deimos/core"
import { expectSent, testConsumeMessage, TestLayer } from "@deimos/test"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import { schemaDir, valid, Widget } from "./fixtures.js"
import { Widget as GeneratedWidget } from "./generated/index.js"

// an app on Avro: unit tests swap in the validating mock, resolving the app's schemas by name (the test layer
// fails as the backend's layer does: with a SchemaError for a schema directory that does not load)
const layer = TestLayer.make({ schemaBackend: AvroBackend.layerValidation({ schemaDirs: [schemaDir] }) })
const widgets = Producer.make({ topic: "widgets", schema: Widget, keyConfig: { field: "id" } })

describe("avroValidation as the test layer's schema backend", () => {
  it.effect("a valid payload is recorded as sent; coercion ran first (numeric string, Date)", () =>
    Effect.gen(function*() {
      yield* widgets.publish({
        ...valid,
        id: 5,
        price: "9.5" as unknown as number,
        updated_at: new Date(1_000) as never
      })
      yield* expectSent("widgets", { id: 5, price: 9.5, updated_at: 1_000 }, { key: 5 })
    }).pipe(Effect.provide(layer)))

  it.effect("an invalid payload fails the publish with the Avro field paths, and nothing is sent", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        widgets.publish({ ...valid, status: "LOST" as "ACTIVE", colour: "red" } as Widget)
      )
      expect(error._tag).toBe("SchemaError")
      expect(error.message).toContain("status")
      expect(error.message).toContain("colour")
    }).pipe(Effect.provide(layer)))

  it.effect("testConsumeMessage runs decode → handler with the Avro checks", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<unknown>(undefined)
      const consumer = Consumer.make({
        topic: "widgets",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        handle: (widget, metadata) => Ref.set(seen, { name: widget?.name, key: metadata.key })
      })
      yield* testConsumeMessage(consumer, valid)
      expect(yield* Ref.get(seen)).toEqual({ name: "w", key: 1 })
      const unknown = Consumer.make({
        topic: "widgets",
        groupId: "g",
        schema: SchemaRef.make<{ readonly id: number }>({ name: "com.example.Gadget" }),
        keyConfig: { none: true },
        handle: () => Effect.void
      })
      const error = yield* Effect.flip(testConsumeMessage(unknown, { id: 1 }))
      expect(error.message).toContain("com.example.Gadget")
    }).pipe(Effect.provide(layer)))

  it.effect("handlers see what the real backends decode: defaults filled, values read back by avsc", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<unknown>(undefined)
      const consumer = Consumer.make({
        topic: "widgets",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        handle: (widget) => Ref.set(seen, widget)
      })
      // a producer may leave out fields with a default; a consumer of avroLocal gets the defaults
      yield* testConsumeMessage(consumer, { id: 2, name: "n", updated_at: 5 } as Widget)
      const expected = {
        id: 2,
        name: "n",
        price: null,
        tags: [],
        status: "ACTIVE",
        dimensions: null,
        attributes: {},
        updated_at: 5,
        seen_at_micros: null
      }
      expect(yield* Ref.get(seen)).toEqual(expected)
      const local = yield* (yield* AvroBackend.makeLocal({ schemaDirs: [schemaDir] })).codec(Widget, "widgets", "write")
      expect(yield* SchemaBackend.decodeWith(local, yield* local.encode({ id: 2, name: "n", updated_at: 5 })))
        .toEqual(expected)
      // a generated handle: the handler gets the Date of its Effect Schema, with the defaults
      const typed = Consumer.make({
        topic: "widgets",
        groupId: "g",
        schema: GeneratedWidget,
        keyConfig: { field: "id" },
        handle: (widget) => Ref.set(seen, widget)
      })
      yield* testConsumeMessage(typed, { id: 3, name: "t", updated_at: new Date(7) })
      expect(yield* Ref.get(seen)).toEqual({ ...expected, id: 3, name: "t", updated_at: new Date(7) })
    }).pipe(Effect.provide(layer)))
})
