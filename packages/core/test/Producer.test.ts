import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as DeimosConfig from "../src/DeimosConfig.js"
import * as MockBackend from "../src/MockBackend.js"
import * as Producer from "../src/Producer.js"
import * as ProducerBackend from "../src/ProducerBackend.js"
import * as SentMessages from "../src/SentMessages.js"
import * as Tombstone from "../src/Tombstone.js"
import { Plain, Widget, WidgetKey } from "./fixtures.js"
import type { Widget as WidgetType } from "./fixtures.js"

const TestEnv = Layer.mergeAll(ProducerBackend.layerTest, MockBackend.layerMockValidating, DeimosConfig.layer())
const sent = Effect.flatMap(SentMessages.SentMessages, (s) => s.all)

const widgets = Producer.make({ topic: "widgets", schema: Widget, keyConfig: { field: "id" } })
const decoder = new TextDecoder()

describe("Producer pipeline", () => {
  it.effect("fills message_id and timestamp when the schema has them and the payload does not", () =>
    Effect.gen(function*() {
      yield* widgets.publish({ id: 1, name: "bolt" })
      yield* widgets.publish({ id: 2, name: "nut", message_id: "fixed", timestamp: new Date(7) })
      const [first, second] = yield* sent
      const p1 = first.payload as Record<string, unknown>
      expect(p1.message_id).toMatch(/^[0-9a-f-]{36}$/)
      expect(p1.timestamp).toBeInstanceOf(Date)
      expect(second.payload).toMatchObject({ message_id: "fixed", timestamp: new Date(7) })
      const plain = Producer.make({ topic: "plain", schema: Plain, keyConfig: { none: true } })
      yield* plain.publish({ id: 1, body: "x" })
      const last = (yield* sent)[2]
      expect(Object.keys(last.payload as object).sort()).toEqual(["body", "id"])
    }).pipe(Effect.provide(TestEnv)))

  it.effect("takes the key from the key field, encodes it, and uses it as the partition key", () =>
    Effect.gen(function*() {
      yield* widgets.publish({ id: 42, name: "bolt" })
      const [message] = yield* sent
      expect(message.key).toBe(42)
      expect(message.partitionKey).toBe("42")
      expect(decoder.decode(message.encodedKey!)).toBe("42")
      expect(message.topic).toBe("widgets")
      expect(message.producer).toBe("widgets")
    }).pipe(Effect.provide(TestEnv)))

  it.effect("plain keys are sent unencoded; schema keys are encoded with their schema", () =>
    Effect.gen(function*() {
      const plain = Producer.make({ topic: "plain", schema: Plain, keyConfig: { plain: true } })
      yield* plain.publish({ id: 1, body: "x" }, { key: "k-1" })
      const keyed = Producer.make({ topic: "keyed", schema: Widget, keyConfig: { schema: WidgetKey } })
      yield* keyed.publish({ id: 1, name: "x" }, { key: { region: "eu", id: 1 } })
      const [p, k] = yield* sent
      expect(decoder.decode(p.encodedKey!)).toBe("k-1")
      expect(k.key).toEqual({ region: "eu", id: 1 })
      const error = yield* Effect.flip(keyed.publish({ id: 1, name: "x" }, { key: { region: "eu" } as never }))
      expect(error._tag).toBe("SchemaError")
    }).pipe(Effect.provide(TestEnv)))

  it.effect("a missing key is an error that names the fix", () =>
    Effect.gen(function*() {
      const plain = Producer.make({ topic: "plain", schema: Plain, keyConfig: { plain: true } })
      const error = yield* Effect.flip(plain.publish({ id: 1, body: "x" }))
      expect(error._tag).toBe("ProducerError")
      expect(error).toMatchObject({ reason: "MissingKey", producer: "plain", topic: "plain" })
      expect(error.message).toContain("keyConfig: { none: true }")
      expect(error.message).toContain("keyConfig: { plain: true }")
      expect(yield* sent).toHaveLength(0)
    }).pipe(Effect.provide(TestEnv)))

  it.effect("a key given to a producer with keyConfig none is an error", () =>
    Effect.gen(function*() {
      const unkeyed = Producer.make({ topic: "plain", schema: Plain, keyConfig: { none: true } })
      const error = yield* Effect.flip(
        unkeyed.publishList([Producer.envelope({ id: 1, body: "x" }, { key: "k" }) as never])
      )
      expect(error).toMatchObject({ _tag: "ProducerError", reason: "UnexpectedKey" })
      yield* unkeyed.publish({ id: 1, body: "x" })
      const [message] = yield* sent
      expect(message.encodedKey).toBeNull()
      expect(message.partitionKey).toBeNull()
    }).pipe(Effect.provide(TestEnv)))

  it.effect("tombstones send the encoded key with a null value", () =>
    Effect.gen(function*() {
      yield* widgets.publish(Tombstone.make(9))
      yield* widgets.publishList([Producer.envelope<WidgetType, number>(null, { key: 10 })])
      const messages = yield* sent
      expect(messages.map((m) => [m.key, m.payload, m.encodedPayload])).toEqual([[9, null, null], [10, null, null]])
      expect(decoder.decode(messages[0].encodedKey!)).toBe("9")
    }).pipe(Effect.provide(TestEnv)))

  it.effect("coerces the payload before encoding and rejects what cannot be coerced with field paths", () =>
    Effect.gen(function*() {
      yield* widgets.publish({ id: "5", name: 12, price: "1.25" } as never)
      const [message] = yield* sent
      expect(message.payload).toMatchObject({ id: 5, name: "12", price: 1.25 })
      const error = yield* Effect.flip(widgets.publish({ id: 1, name: "x", dimensions: { width: "w" } } as never))
      expect(error._tag).toBe("SchemaError")
      expect(error.message).toContain("dimensions.width")
      expect(error.message).toContain("dimensions.height")
    }).pipe(Effect.provide(TestEnv)))

  it.effect("applies the topic prefix to the topic", () =>
    Effect.gen(function*() {
      yield* widgets.publish({ id: 1, name: "x" })
      const [message] = yield* sent
      expect(message.topic).toBe("staging.widgets")
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          ProducerBackend.layerTest,
          MockBackend.layerMockValidating,
          DeimosConfig.layer({ topicPrefix: "staging." })
        )
      )
    ))

  it.effect("splits publishList into batches of maxBatchSize", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<Array<number>>([])
      const counting = Layer.succeed(ProducerBackend.ProducerBackend, {
        name: "counting",
        execute: (_topic, messages) => Ref.update(calls, (c) => [...c, messages.length])
      })
      const small = Producer.make({ topic: "plain", schema: Plain, keyConfig: { none: true }, maxBatchSize: 3 })
      yield* small.publishList(Array.from({ length: 8 }, (_, i) => ({ id: i, body: "x" }))).pipe(
        Effect.provide(Layer.mergeAll(counting, MockBackend.layerMockValidating, DeimosConfig.layer()))
      )
      expect(yield* Ref.get(calls)).toEqual([3, 3, 2])
      expect(widgets.maxBatchSize).toBe(500)
    }))

  it.effect("partition keys come from the partitionKey option, per message, or the key", () =>
    Effect.gen(function*() {
      const byName = Producer.make({
        topic: "widgets",
        schema: Widget,
        keyConfig: { field: "id" },
        partitionKey: (w) => w.name
      })
      yield* byName.publish({ id: 1, name: "shard-a" })
      yield* byName.publish({ id: 2, name: "b" }, { partitionKey: "explicit" })
      expect((yield* sent).map((m) => m.partitionKey)).toEqual(["shard-a", "explicit"])
    }).pipe(Effect.provide(TestEnv)))

  it.effect("sends headers, merging call and message headers", () =>
    Effect.gen(function*() {
      yield* widgets.publish({ id: 1, name: "x" }, { headers: { source: "test" } })
      yield* widgets.publishList([Producer.envelope({ id: 2, name: "y" }, { headers: { b: "2" } })], {
        headers: { a: "1" }
      })
      expect((yield* sent).map((m) => m.headers)).toEqual([{ source: "test" }, { a: "1", b: "2" }])
    }).pipe(Effect.provide(TestEnv)))

  it.effect("writes a W3C traceparent header from the current span", () =>
    Effect.gen(function*() {
      const span = yield* Effect.currentSpan
      yield* widgets.publish({ id: 1, name: "x" })
      const [message] = yield* sent
      expect(message.headers.traceparent).toBe(`00-${span.traceId}-${span.spanId}-01`)
    }).pipe(Effect.withSpan("caller"), Effect.provide(TestEnv)))
})

describe("Disabling producers", () => {
  const plain = Producer.make({ topic: "plain", schema: Plain, keyConfig: { none: true } })
  const both = Effect.zipRight(widgets.publish({ id: 1, name: "x" }), plain.publish({ id: 1, body: "y" }))
  const topics = Effect.map(sent, (all) => all.map((m) => m.topic))

  it.effect("disabled() drops every publish inside it, and only inside it", () =>
    Effect.gen(function*() {
      yield* Producer.disabled(both)
      expect(yield* topics).toEqual([])
      yield* both
      expect(yield* topics).toEqual(["widgets", "plain"])
    }).pipe(Effect.provide(TestEnv)))

  it.effect("disabledFor() drops only the named producers and nests", () =>
    Effect.gen(function*() {
      yield* Producer.disabledFor([widgets])(both)
      expect(yield* topics).toEqual(["plain"])
      yield* Producer.disabledFor([widgets])(Producer.disabledFor(["plain"])(both))
      expect(yield* topics).toEqual(["plain"])
    }).pipe(Effect.provide(TestEnv)))

  it.effect("is fiber-local: a concurrent fiber keeps publishing", () =>
    Effect.gen(function*() {
      yield* Effect.all([
        Producer.disabled(Effect.zipRight(Effect.yieldNow(), widgets.publish({ id: 1, name: "x" }))),
        Effect.zipRight(Effect.yieldNow(), plain.publish({ id: 2, body: "y" }))
      ], { concurrency: 2 })
      expect(yield* topics).toEqual(["plain"])
    }).pipe(Effect.provide(TestEnv)))

  it.effect("the producersDisabled setting and the per-producer disabled option drop messages", () =>
    Effect.gen(function*() {
      yield* both.pipe(Effect.provide(DeimosConfig.layer({ producersDisabled: true })))
      const off = Producer.make({ topic: "off", schema: Plain, keyConfig: { none: true }, disabled: true })
      yield* off.publish({ id: 1, body: "z" })
      expect(yield* topics).toEqual([])
    }).pipe(Effect.provide(TestEnv)))
})
