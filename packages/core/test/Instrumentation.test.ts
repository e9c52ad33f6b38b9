import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Consumer from "../src/Consumer.js"
import * as ConsumerProcessor from "../src/ConsumerProcessor.js"
import * as DeimosConfig from "../src/DeimosConfig.js"
import * as Instrumentation from "../src/Instrumentation.js"
import * as MockBackend from "../src/MockBackend.js"
import * as Producer from "../src/Producer.js"
import * as ProducerBackend from "../src/ProducerBackend.js"
import * as SchemaBackend from "../src/SchemaBackend.js"
import { Plain } from "./fixtures.js"

class Nope extends Data.TaggedError("Nope")<{}> {}

describe("Instrumentation", () => {
  it.scoped("subscribers receive encode_messages and handler error events", () =>
    Effect.gen(function*() {
      const events = yield* Instrumentation.Events
      const stream = yield* events.subscribe
      const producer = Producer.make({ topic: "events", schema: Plain, keyConfig: { none: true } })
      yield* producer.publishList([{ id: 1, body: "a" }, { id: 2, body: "b" }])
      const consumer = Consumer.make({
        topic: "events",
        groupId: "g",
        schema: Plain,
        keyConfig: { none: true },
        handle: () => new Nope()
      })
      const value = yield* SchemaBackend.encode(Plain, "events", { id: 1, body: "a" })
      yield* ConsumerProcessor.processMessage(consumer, {
        topic: "events",
        partition: 1,
        offset: "5",
        key: null,
        value,
        headers: {},
        timestamp: "0"
      })
      const received = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(stream, 2)))
      expect(received[0]).toEqual({ _tag: "EncodeMessages", producer: "events", topic: "events", count: 2 })
      expect(received[1]).toMatchObject({
        _tag: "HandlerError",
        consumer: "g:events",
        partition: 1,
        offset: "5",
        action: "swallow",
        error: new Nope()
      })
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          Instrumentation.layerPubSub(),
          ProducerBackend.layerTest,
          MockBackend.layerMockValidating,
          DeimosConfig.layer()
        )
      )
    ))
})
