import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import type * as Tracer from "effect/Tracer"
import * as Consumer from "../src/Consumer.js"
import * as ConsumerProcessor from "../src/ConsumerProcessor.js"
import * as DeadLetter from "../src/DeadLetter.js"
import * as DeimosConfig from "../src/DeimosConfig.js"
import * as ErrorPolicy from "../src/ErrorPolicy.js"
import { ConsumerFatalError } from "../src/index.js"
import * as Metrics from "../src/Metrics.js"
import * as MockBackend from "../src/MockBackend.js"
import * as ProducerBackend from "../src/ProducerBackend.js"
import { ProducerError } from "../src/ProducerError.js"
import * as SchemaBackend from "../src/SchemaBackend.js"
import type * as SchemaError from "../src/SchemaError.js"
import * as SentMessages from "../src/SentMessages.js"
import * as Tombstone from "../src/Tombstone.js"
import * as TraceContext from "../src/TraceContext.js"
import { InstalledTracer, Widget } from "./fixtures.js"

class Boom extends Data.TaggedError("Boom")<{ readonly reason: string }> {}
class Transient extends Data.TaggedError("Transient")<{}> {}

const backend = MockBackend.mockValidating
const encoder = new TextEncoder()
let offsetSeq = 0

const raw = (topic: string, payload: unknown, key: unknown = 1, headers: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const keyCodec = yield* backend.keyCodec({ _tag: "Field", field: "id", valueSchema: Widget }, topic, "write")
    const codec = yield* backend.codec(Widget, topic, "write")
    return {
      topic,
      partition: 3,
      offset: String(offsetSeq++),
      key: key === null ? null : yield* keyCodec.encode(key),
      value: payload === null ? null : yield* codec.encode(payload),
      headers,
      timestamp: "1700000000000"
    } satisfies ConsumerProcessor.RawMessage
  })

const counter = (status: string, topic: string) =>
  Effect.map(
    Metric.value(Metric.tagged(Metric.tagged(Metrics.handler, "status", status), "topic", topic)),
    (s) => s.count
  )

const Env = Layer.mergeAll(MockBackend.layerMockValidating, DeimosConfig.layer())
const processMessage = ConsumerProcessor.processMessage
const processBatch = ConsumerProcessor.processBatch

/** The ConsumerFatalError an effect fails with (the mock backend resolves every schema). */
const fatalOf = <R>(effect: Effect.Effect<void, ConsumerFatalError | SchemaError.SchemaError, R>) =>
  Effect.flatMap(Effect.flip(effect), (e) => e._tag === "ConsumerFatalError" ? Effect.succeed(e) : Effect.die(e))

describe("Consumer definitions", () => {
  const base = { topic: "t", groupId: "g", schema: Widget, keyConfig: { field: "id" } } as const

  it("rejects an unknown delivery mode at construction", () => {
    expect(() => Consumer.make({ ...base, delivery: "stream" as never, handle: () => Effect.void })).toThrow(
      /Unknown delivery "stream"/
    )
  })

  it("rejects inlineBatch without handleBatch, handleBatch without inlineBatch, and both handlers", () => {
    expect(() => Consumer.make({ ...base, delivery: "inlineBatch", handle: () => Effect.void } as never)).toThrow(
      /needs handleBatch/
    )
    expect(() => Consumer.make({ ...base, delivery: "batch", handleBatch: () => Effect.void } as never)).toThrow(
      /handleBatch needs delivery "inlineBatch"/
    )
    const error = Consumer.validate({ ...base, handle: () => 1, handleBatch: () => 2 })
    expect(error?._tag).toBe("ConsumerDefinitionError")
    expect(error?.consumer).toBe("g:t")
  })

  it("keeps Kafka options and defaults the name and delivery", () => {
    const c = Consumer.make({ ...base, maxConcurrency: 2, handle: () => Effect.void })
    expect([c.name, c.delivery, c.maxConcurrency, c.tombstones]).toEqual(["g:t", "message", 2, false])
    const inline = Consumer.make({ ...base, delivery: "inlineBatch", handleBatch: () => Effect.void })
    expect(inline.delivery === "inlineBatch" && typeof inline.handleBatch).toBe("function")
  })
})

describe("processMessage", () => {
  it.effect("decodes key and payload and passes metadata to the handler", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<unknown>>([])
      const consumer = Consumer.make({
        topic: "decode",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        handle: (payload, metadata) => Ref.update(seen, (s) => [...s, payload, metadata])
      })
      const message = yield* raw("decode", { id: 7, name: "bolt" }, 7, { source: "x" })
      yield* processMessage(consumer, message)
      const [payload, metadata] = yield* Ref.get(seen)
      expect(payload).toEqual({ id: 7, name: "bolt" })
      expect(metadata).toMatchObject({
        consumer: "g:decode",
        topic: "decode",
        partition: 3,
        offset: message.offset,
        key: 7,
        headers: { source: "x" },
        retryCount: 0,
        timestamp: new Date(1_700_000_000_000)
      })
    }).pipe(Effect.provide(Env)))

  it.effect("by default a tombstone never reaches the handler: it is skipped and counted", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<unknown>>([])
      const consumer = Consumer.make({
        topic: "tombSkip",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        // the payload type is the schema's: no null to guard against
        handle: (payload) => Ref.update(seen, (s) => [...s, payload.name])
      })
      yield* processMessage(consumer, yield* raw("tombSkip", null, 4))
      yield* processMessage(consumer, yield* raw("tombSkip", { id: 5, name: "e" }, 5))
      expect(yield* Ref.get(seen)).toEqual(["e"])
      expect(yield* counter("tombstone_skipped", "tombSkip")).toBe(1)
      expect(yield* counter("received", "tombSkip")).toBe(2)
    }).pipe(Effect.provide(Env)))

  it.effect("with tombstones: true a tombstone reaches the handler as a Tombstone carrying the decoded key", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<unknown>>([])
      const consumer = Consumer.make({
        topic: "tombOn",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        tombstones: true,
        handle: (payload) =>
          Ref.update(seen, (s) => [...s, Tombstone.isTombstone(payload) ? ["deleted", payload.key] : payload.name])
      })
      yield* processMessage(consumer, yield* raw("tombOn", null, 4))
      yield* processMessage(consumer, yield* raw("tombOn", { id: 5, name: "e" }, 5))
      // a null value without a key deletes nothing: skipped even here
      yield* processMessage(consumer, yield* raw("tombOn", null, null))
      expect(yield* Ref.get(seen)).toEqual([["deleted", 4], "e"])
      expect(yield* counter("tombstone_skipped", "tombOn")).toBe(1)
    }).pipe(Effect.provide(Env)))

  it.effect("by default a failed handler is logged, counted as handler{status:error} and swallowed", () =>
    Effect.gen(function*() {
      const before = yield* counter("error", "swallow")
      const consumer = Consumer.make({
        topic: "swallow",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        handle: () => new Boom({ reason: "bad" })
      })
      yield* processMessage(consumer, yield* raw("swallow", { id: 1, name: "a" }))
      expect((yield* counter("error", "swallow")) - before).toBe(1)
      expect(yield* counter("success", "swallow")).toBe(0)
    }).pipe(Effect.provide(Env)))

  it.effect("a handler that throws a plain Error is swallowed and counted by default", () =>
    Effect.gen(function*() {
      const before = yield* counter("error", "throws")
      const consumer = Consumer.make({
        topic: "throws",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        handle: () =>
          Effect.sync(() => {
            throw new Error("kaput")
          })
      })
      yield* processMessage(consumer, yield* raw("throws", { id: 1, name: "a" }))
      expect((yield* counter("error", "throws")) - before).toBe(1)
    }).pipe(Effect.provide(Env)))

  it.effect("a thrown Error is retried with exponential backoff when reraiseErrors is on", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make<Array<number>>([])
      const consumer = Consumer.make({
        topic: "retry",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        handle: (_payload, metadata): Effect.Effect<void> =>
          Effect.flatMap(Ref.updateAndGet(attempts, (a) => [...a, metadata.retryCount]), (a) =>
            a.length < 3
              ? Effect.sync(() => {
                throw new Error("flaky")
              })
              : Effect.void)
      })
      const message = yield* raw("retry", { id: 1, name: "a" })
      const fiber = yield* Effect.fork(
        processMessage(consumer, message).pipe(Effect.provide(DeimosConfig.layer({ reraiseErrors: true })))
      )
      yield* TestClock.adjust("999 millis")
      expect(yield* Ref.get(attempts)).toEqual([0])
      yield* TestClock.adjust("1 millis")
      expect(yield* Ref.get(attempts)).toEqual([0, 1])
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(attempts)).toEqual([0, 1, 2])
    }).pipe(Effect.provide(Env)))

  it.effect("errors tagged in retryOn and errors decide picks are retried; others swallowed", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const consumer = Consumer.make({
        topic: "selective",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        handle: (payload): Effect.Effect<void, Boom | Transient> =>
          Effect.flatMap(
            Ref.getAndUpdate(attempts, (n) => n + 1),
            (n) =>
              n > 0
                ? Effect.void
                : Effect.fail(payload.name === "t" ? new Transient() : new Boom({ reason: payload.name }))
          ),
        // after the handler: the handler's error type is known when decide is typed
        errorPolicy: {
          retryOn: ["Transient"],
          decide: (error) => error._tag === "Boom" && error.reason === "retry-me" ? "retry" : undefined,
          backoff: { min: "10 millis", max: "10 millis" }
        }
      })
      const run = (name: string) =>
        Effect.gen(function*() {
          yield* Ref.set(attempts, 0)
          const fiber = yield* Effect.fork(processMessage(consumer, yield* raw("selective", { id: 1, name })))
          yield* TestClock.adjust("10 millis")
          yield* Fiber.join(fiber)
          return yield* Ref.get(attempts)
        })
      expect(yield* run("t")).toBe(2)
      expect(yield* run("retry-me")).toBe(2)
      expect(yield* run("other")).toBe(1)
    }).pipe(Effect.provide(Env)))

  it.effect("a fatal tag stops the consumer with ConsumerFatalError naming consumer, topic, partition and offset", () =>
    Effect.gen(function*() {
      const consumer = Consumer.make({
        topic: "fatal",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        errorPolicy: { fatalOn: ["Boom"] },
        handle: () => new Boom({ reason: "stop" })
      })
      const message = yield* raw("fatal", { id: 1, name: "a" })
      const error = yield* fatalOf(processMessage(consumer, message))
      expect(error._tag).toBe("ConsumerFatalError")
      expect(error).toMatchObject({ consumer: "g:fatal", topic: "fatal", partition: 3, offset: message.offset })
      expect(error.message).toContain(`fatal[3]@${message.offset}`)
      expect(ErrorPolicy.failureOf(error.cause)).toBeInstanceOf(Boom)
      expect(error).toBeInstanceOf(ConsumerFatalError)
    }).pipe(Effect.provide(Env)))

  it.effect("a retried error that runs out of retries becomes fatal", () =>
    Effect.gen(function*() {
      const consumer = Consumer.make({
        topic: "exhaust",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        errorPolicy: { reraiseErrors: true, backoff: { min: "1 millis", maxRetries: 2 } },
        handle: () => new Boom({ reason: "always" })
      })
      const fiber = yield* Effect.fork(processMessage(consumer, yield* raw("exhaust", { id: 1, name: "a" })))
      yield* TestClock.adjust("1 second")
      const error = yield* fatalOf(Fiber.join(fiber))
      expect(error.retries).toBe(2)
      expect(error.message).toContain("after 2 retries")
    }).pipe(Effect.provide(Env)))

  it.effect("an undecodable message is swallowed by default and fatal when SchemaError is in fatalOn", () =>
    Effect.gen(function*() {
      const handled = yield* Ref.make(0)
      const make = (fatalOn: ReadonlyArray<"SchemaError">) =>
        Consumer.make({
          topic: "garbage",
          groupId: "g",
          schema: Widget,
          keyConfig: { field: "id" },
          errorPolicy: { fatalOn },
          handle: () => Ref.update(handled, (n) => n + 1)
        })
      const garbage = { ...(yield* raw("garbage", { id: 1, name: "a" })), value: encoder.encode("{not json") }
      const before = yield* counter("error", "garbage")
      yield* processMessage(make([]), garbage)
      expect((yield* counter("error", "garbage")) - before).toBe(1)
      const error = yield* fatalOf(processMessage(make(["SchemaError"]), garbage))
      expect(ErrorPolicy.tagOf(error.cause)).toBe("SchemaError")
      expect(yield* Ref.get(handled)).toBe(0)
    }).pipe(Effect.provide(Env)))

  it.effect("defects are never swallowed silently: Defect in fatalOn stops the consumer", () =>
    Effect.gen(function*() {
      const consumer = Consumer.make({
        topic: "defect",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        errorPolicy: { fatalOn: ["Defect"] },
        handle: () => Effect.die(new Error("bug"))
      })
      const error = yield* fatalOf(processMessage(consumer, yield* raw("defect", { id: 1, name: "a" })))
      const failure = ErrorPolicy.failureOf(error.cause) as ErrorPolicy.Defect
      expect([failure._tag, (failure.defect as Error).message]).toEqual(["Defect", "bug"])
    }).pipe(Effect.provide(Env)))

  it.effect("interruption is not caught by the error policy", () =>
    Effect.gen(function*() {
      const consumer = Consumer.make({
        topic: "interrupt",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        handle: () => Effect.interrupt
      })
      const exit = yield* Effect.exit(processMessage(consumer, yield* raw("interrupt", { id: 1, name: "a" })))
      expect(exit._tag === "Failure" && exit.cause._tag).toBe("Interrupt")
    }).pipe(Effect.provide(Env)))

  it.effect("with a tracer installed, runs in a deimos-consumer span that continues the producer's trace", () =>
    Effect.gen(function*() {
      const spans = yield* Ref.make<Array<Tracer.Span>>([])
      const consumer = Consumer.make({
        topic: "traced",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        handle: () => Effect.flatMap(Effect.currentSpan, (span) => Ref.update(spans, (s) => [...s, span]))
      })
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
      yield* processMessage(
        consumer,
        yield* raw("traced", { id: 1, name: "a" }, 1, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` })
      )
      const [span] = yield* Ref.get(spans)
      expect(span.name).toBe("deimos-consumer")
      expect(span.traceId).toBe(traceId)
      expect(Option.map(span.parent, (p) => p.spanId)).toEqual(Option.some("00f067aa0ba902b7"))
      expect(span.attributes.get("topic")).toBe("traced")
      expect(span.attributes.get("partition")).toBe(3)
    }).pipe(Effect.provide(Env), Effect.withTracer(InstalledTracer)))

  it.effect("with Effect's built-in tracer no span is made per message, but the producer's trace reaches the handler", () =>
    Effect.gen(function*() {
      const parents = yield* Ref.make<Array<Tracer.AnySpan>>([])
      const consumer = Consumer.make({
        topic: "untraced",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        handle: () =>
          Effect.flatMap(Effect.currentParentSpan, (span) => Ref.update(parents, (s) => [...s, span])).pipe(
            Effect.orDie
          )
      })
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
      yield* processMessage(
        consumer,
        yield* raw("untraced", { id: 1, name: "a" }, 1, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` })
      )
      const [parent] = yield* Ref.get(parents)
      expect(parent._tag).toBe("ExternalSpan")
      expect([parent.traceId, parent.spanId]).toEqual([traceId, "00f067aa0ba902b7"])
      // and what the handler publishes carries that trace on
      expect(yield* TraceContext.current.pipe(Effect.withParentSpan(parent))).toEqual(
        Option.some(`00-${traceId}-00f067aa0ba902b7-01`)
      )
    }).pipe(Effect.provide(Env)))

  it.effect("records the time_delayed histogram when the payload has a timestamp", () =>
    Effect.gen(function*() {
      const histogram = Metric.tagged(Metric.tagged(Metrics.handlerTime, "time", "time_delayed"), "topic", "delayed")
      const consumer = Consumer.make({
        topic: "delayed",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        handle: () => Effect.void
      })
      yield* TestClock.setTime(10_000)
      yield* processMessage(consumer, yield* raw("delayed", { id: 1, name: "a", timestamp: new Date(7_500) }))
      const state = yield* Metric.value(histogram)
      expect(state.count).toBe(1)
      expect(state.sum).toBeCloseTo(2.5)
    }).pipe(Effect.provide(Env)))
})

describe("processBatch", () => {
  it.effect("inlineBatch hands the decoded batch with keys and offsets to handleBatch", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<unknown>>([])
      const consumer = Consumer.make({
        topic: "inline",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        delivery: "inlineBatch",
        tombstones: true,
        handleBatch: (payloads, metadata) =>
          Ref.set(seen, [payloads.map((p) => Tombstone.isTombstone(p) ? `-${p.key}` : p.name), metadata])
      })
      const messages = [yield* raw("inline", { id: 1, name: "a" }, 1), yield* raw("inline", null, 2)]
      yield* processBatch(consumer, messages)
      const [names, metadata] = yield* Ref.get(seen)
      expect(names).toEqual(["a", "-2"])
      expect(metadata).toMatchObject({
        keys: [1, 2],
        batchSize: 2,
        firstOffset: messages[0].offset,
        lastOffset: messages[1].offset,
        partition: 3
      })
      expect(yield* counter("batch_success", "inline")).toBe(1)
    }).pipe(Effect.provide(Env)))

  it.effect("batch delivery runs the handler per message and one failure does not stop the others", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<number>>([])
      const consumer = Consumer.make({
        topic: "perMessage",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        delivery: "batch",
        handle: (payload) =>
          payload.id === 2 ? new Boom({ reason: "two" }) : Ref.update(seen, (s) => [...s, payload.id])
      })
      yield* processBatch(consumer, [
        yield* raw("perMessage", { id: 1, name: "a" }, 1),
        yield* raw("perMessage", { id: 2, name: "b" }, 2),
        yield* raw("perMessage", { id: 3, name: "c" }, 3)
      ])
      expect(yield* Ref.get(seen)).toEqual([1, 3])
      expect(yield* counter("batch_received", "perMessage")).toBe(1)
    }).pipe(Effect.provide(Env)))
})

describe("inlineBatch with undecodable messages", () => {
  const garbage = (topic: string, key: number) =>
    Effect.map(raw(topic, { id: key, name: "x" }, key), (m) => ({ ...m, value: new Uint8Array([0xff, 0x00, 0x01]) }))
  const inline = (topic: string, fatalOn: ReadonlyArray<"SchemaError">, seen: Ref.Ref<Array<unknown>>) =>
    Consumer.make({
      topic,
      groupId: "g",
      schema: Widget,
      keyConfig: { field: "id" },
      delivery: "inlineBatch",
      errorPolicy: { fatalOn },
      handleBatch: (payloads, metadata) =>
        Ref.update(seen, (s) => [...s, { names: payloads.map((p) => p.name), offsets: metadata.offsets }])
    })

  it.effect("the handler gets the decodable messages with their offsets; the bad one is swallowed and counted", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<unknown>>([])
      const messages = [
        yield* raw("inlineBad", { id: 1, name: "a" }, 1),
        yield* garbage("inlineBad", 2),
        yield* raw("inlineBad", { id: 3, name: "c" }, 3)
      ]
      yield* processBatch(inline("inlineBad", [], seen), messages)
      expect(yield* Ref.get(seen)).toEqual([{ names: ["a", "c"], offsets: [messages[0].offset, messages[2].offset] }])
      expect(yield* counter("received", "inlineBad")).toBe(3)
      expect(yield* counter("error", "inlineBad")).toBe(1)
      expect(yield* counter("success", "inlineBad")).toBe(2)
    }).pipe(Effect.provide(Env)))

  it.effect("with SchemaError in fatalOn the batch stops at the bad message before the handler runs", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<unknown>>([])
      const messages = [yield* raw("inlineFatal", { id: 1, name: "a" }, 1), yield* garbage("inlineFatal", 2)]
      const error = yield* fatalOf(processBatch(inline("inlineFatal", ["SchemaError"], seen), messages))
      expect(error._tag).toBe("ConsumerFatalError")
      expect(error.offset).toBe(messages[1].offset)
      expect(yield* Ref.get(seen)).toEqual([])
    }).pipe(Effect.provide(Env)))

  it.effect("a codec that must look a writer schema up first (load): fetched once per id, nothing decoded twice", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<unknown>>([])
      let decodes = 0
      let loads = 0
      const known = new Set<number>()
      // the first byte names a "writer schema id"; an id not met yet needs a lookup, as a registry decoder does
      const lookingUp = SchemaBackend.make({
        name: "lookingUp",
        codec: (ref, topic, use) =>
          Effect.map(backend.codec(ref, topic, use), (codec) => ({
            ...codec,
            decode: (bytes) => {
              decodes++
              if (!known.has(bytes[0])) throw new Error("decode before load")
              return codec.decode(bytes.subarray(1))
            },
            load: (bytes) =>
              known.has(bytes[0]) ? undefined : Effect.sync(() => {
                loads++
                known.add(bytes[0])
              })
          })),
        keyCodec: backend.keyCodec,
        fields: backend.fields
      })
      const withId = (m: ConsumerProcessor.RawMessage, id: number) => ({
        ...m,
        value: Buffer.concat([Buffer.from([id]), m.value!])
      })
      const messages = [
        withId(yield* raw("inlineLoad", { id: 1, name: "a" }, 1), 1),
        withId(yield* raw("inlineLoad", { id: 2, name: "b" }, 2), 0),
        yield* garbage("inlineLoad", 3),
        withId(yield* raw("inlineLoad", { id: 4, name: "d" }, 4), 0),
        withId(yield* raw("inlineLoad", { id: 5, name: "e" }, 5), 1)
      ]
      yield* processBatch(inline("inlineLoad", [], seen), messages).pipe(
        Effect.provideService(SchemaBackend.SchemaBackend, lookingUp)
      )
      expect(yield* Ref.get(seen)).toEqual([{
        names: ["a", "b", "d", "e"],
        offsets: [messages[0].offset, messages[1].offset, messages[3].offset, messages[4].offset]
      }])
      // ids 1 and 0, and the garbage's first byte; five messages decoded once each
      expect([loads, decodes]).toEqual([3, 5])
      expect(yield* counter("error", "inlineLoad")).toBe(1)
    }).pipe(Effect.provide(Env)))

  it.effect("a batch span continues the first message's trace and links the other producers' traces", () =>
    Effect.gen(function*() {
      const spans = yield* Ref.make<Array<Tracer.Span>>([])
      const consumer = Consumer.make({
        topic: "inlineTraced",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        delivery: "inlineBatch",
        handleBatch: () => Effect.flatMap(Effect.currentSpan, (span) => Ref.update(spans, (s) => [...s, span]))
      })
      const trace = (t: string, s: string) => ({ traceparent: `00-${t.repeat(32)}-${s.repeat(16)}-01` })
      yield* processBatch(consumer, [
        yield* raw("inlineTraced", { id: 1, name: "a" }, 1, trace("a", "1")),
        yield* raw("inlineTraced", { id: 2, name: "b" }, 2, trace("b", "2")),
        yield* raw("inlineTraced", { id: 3, name: "c" }, 3, trace("b", "2")),
        yield* raw("inlineTraced", { id: 4, name: "d" }, 4)
      ])
      const [span] = yield* Ref.get(spans)
      expect(span.traceId).toBe("a".repeat(32))
      expect(span.links.map((l) => [l.span.traceId, l.span.spanId])).toEqual([["b".repeat(32), "2".repeat(16)]])
    }).pipe(Effect.provide(Env)))
})

describe("retries and stopping", () => {
  it.effect("a retried message is counted as received once", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const consumer = Consumer.make({
        topic: "receivedOnce",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        errorPolicy: { retryOn: ["Transient"] },
        handle: () =>
          Effect.flatMap(Ref.updateAndGet(attempts, (n) => n + 1), (n) => n < 3 ? new Transient() : Effect.void)
      })
      const fiber = yield* Effect.fork(
        processMessage(consumer, yield* raw("receivedOnce", { id: 1, name: "a" }))
      )
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(attempts)).toBe(3)
      expect(yield* counter("received", "receivedOnce")).toBe(1)
      expect(yield* counter("error", "receivedOnce")).toBe(2)
      expect(yield* counter("success", "receivedOnce")).toBe(1)
    }).pipe(Effect.provide(Env)))

  it.effect("when the runtime signals Stopping, a message waiting to retry is given up at once (interrupted)", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const stopping = yield* Deferred.make<void>()
      const consumer = Consumer.make({
        topic: "stopRetry",
        groupId: "g",
        schema: Widget,
        keyConfig: { field: "id" },
        errorPolicy: { retryOn: ["Transient"] },
        handle: () => Effect.zipRight(Ref.update(attempts, (n) => n + 1), new Transient())
      })
      const fiber = yield* Effect.fork(
        processMessage(consumer, yield* raw("stopRetry", { id: 1, name: "a" })).pipe(
          Effect.provideService(ErrorPolicy.Stopping, Deferred.await(stopping))
        )
      )
      yield* TestClock.adjust("1 second") // first retry after 1 s
      expect(yield* Ref.get(attempts)).toBe(2)
      yield* Deferred.succeed(stopping, undefined) // now waiting 2 s for the next retry
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(yield* Ref.get(attempts)).toBe(2)
    }).pipe(Effect.provide(Env)))
})

describe("ErrorPolicy and DeimosConfig", () => {
  it("backs off exponentially from 1 s to 60 s by default", () => {
    const backoff = DeimosConfig.defaults.backoff
    expect([0, 1, 2, 5, 6, 30].map((n) => Duration.toSeconds(ErrorPolicy.delay(backoff, n)))).toEqual([
      1,
      2,
      4,
      32,
      60,
      60
    ])
  })

  it.effect("layerConfig reads DEIMOS_* settings through Config", () =>
    Effect.gen(function*() {
      const settings = yield* DeimosConfig.DeimosConfig
      expect(settings.topicPrefix).toBe("dev.")
      expect(settings.payloadLogLevel).toBe("keys")
      expect(settings.reraiseErrors).toBe(true)
      expect(Duration.toMillis(settings.backoff.min)).toBe(250)
      expect(settings.backoff.maxRetries).toBe(3)
      expect(Duration.toSeconds(settings.backoff.max)).toBe(60)
    }).pipe(
      Effect.provide(DeimosConfig.layerConfig()),
      Effect.withConfigProvider(
        ConfigProvider.fromMap(
          new Map([
            ["DEIMOS.TOPIC_PREFIX", "dev."],
            ["DEIMOS.PAYLOAD_LOG_LEVEL", "keys"],
            ["DEIMOS.RERAISE_ERRORS", "true"],
            ["DEIMOS.BACKOFF_MIN", "250 millis"],
            ["DEIMOS.BACKOFF_MAX_RETRIES", "3"]
          ])
        )
      )
    ))

  it.effect("an invalid setting is a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(DeimosConfig.layerConfig()).pipe(
          Effect.scoped,
          Effect.withConfigProvider(
            ConfigProvider.fromMap(new Map([["DEIMOS.PAYLOAD_LOG_LEVEL", "everything"]]))
          )
        )
      )
      expect(String(error)).toContain("PAYLOAD_LOG_LEVEL")
    }))
})

describe("dead letters", () => {
  const Sent = ProducerBackend.layerTest
  const make = (topic: string, policy: Consumer.MessageConsumer<Widget, number, Boom, never, Widget>["errorPolicy"]) =>
    Consumer.make({
      topic,
      groupId: "g",
      schema: Widget,
      keyConfig: { field: "id" },
      errorPolicy: policy,
      handle: (payload): Effect.Effect<void, Boom> =>
        payload.name === "poison" ? Effect.fail(new Boom({ reason: "poison pill" })) : Effect.void
    })

  it.effect("deadLetterOn sends the raw key, value and headers to <topic>.dlq with the error and the source", () =>
    Effect.gen(function*() {
      const message = yield* raw("dlq", { id: 9, name: "poison" }, 9, { origin: "app" })
      yield* processMessage(make("dlq", { deadLetterOn: ["Boom"] }), message)
      const sent = yield* Effect.flatMap(SentMessages.SentMessages, (s) => s.all)
      expect(sent).toHaveLength(1)
      expect(sent[0].topic).toBe("dlq.dlq")
      expect(sent[0].encodedKey).toEqual(message.key)
      expect(sent[0].encodedPayload).toEqual(message.value)
      expect(sent[0].headers).toMatchObject({
        origin: "app",
        [DeadLetter.headers.errorTag]: "Boom",
        [DeadLetter.headers.consumer]: "g:dlq",
        [DeadLetter.headers.sourceTopic]: "dlq",
        [DeadLetter.headers.sourcePartition]: "3",
        [DeadLetter.headers.sourceOffset]: message.offset,
        [DeadLetter.headers.attempts]: "1"
      })
      expect(String(sent[0].headers[DeadLetter.headers.errorMessage])).toContain("Boom")
      expect(yield* counter("dead_letter", "dlq")).toBe(1)
    }).pipe(Effect.provide(Layer.merge(Env, Sent))))

  it.effect("decide can dead-letter on the payload; retries that run out can end in the dead-letter topic", () =>
    Effect.gen(function*() {
      yield* processMessage(
        make("dlqDecide", { decide: (_error, payload) => payload?.name === "poison" ? "deadLetter" : undefined }),
        yield* raw("dlqDecide", { id: 1, name: "poison" })
      )
      const exhausted = yield* Effect.fork(
        processMessage(
          make("dlqExhausted", {
            retryOn: ["Boom"],
            backoff: { min: "1 second", maxRetries: 2 },
            exhausted: "deadLetter",
            deadLetterTopic: (topic) => `${topic}-failed`
          }),
          yield* raw("dlqExhausted", { id: 2, name: "poison" })
        )
      )
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(exhausted)
      const sent = yield* Effect.flatMap(SentMessages.SentMessages, (s) => s.all)
      expect(sent.map((m) => [m.topic, m.headers[DeadLetter.headers.attempts]])).toEqual([
        ["dlqDecide.dlq", "1"],
        ["dlqExhausted-failed", "3"]
      ])
    }).pipe(Effect.provide(Layer.merge(Env, Sent))))

  it.effect("without a ProducerBackend a dead letter cannot be sent: the consumer stops there, nothing lost", () =>
    Effect.gen(function*() {
      const message = yield* raw("dlqNowhere", { id: 1, name: "poison" })
      const error = yield* fatalOf(processMessage(make("dlqNowhere", { deadLetterOn: ["Boom"] }), message))
      expect(error._tag).toBe("ConsumerFatalError")
      expect(error.message).toContain("no ProducerBackend")
      expect(error.offset).toBe(message.offset)
    }).pipe(Effect.provide(Env)))

  it.effect("a dead letter the backend refuses for good stops the consumer; one it cannot take yet is retried", () => {
    const calls = { count: 0 }
    const flaky = Layer.succeed(ProducerBackend.ProducerBackend, {
      name: "flaky",
      execute: (topic) =>
        Effect.suspend(() => {
          calls.count++
          if (topic.startsWith("refused")) {
            return Effect.fail(
              new ProducerError({ reason: "Send", producer: "x", topic, retriable: false, message: "no such topic" })
            )
          }
          return calls.count < 3
            ? Effect.fail(new ProducerError({ reason: "Send", producer: "x", topic, retriable: true, message: "down" }))
            : Effect.void
        })
    })
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        processMessage(make("later", { deadLetterOn: ["Boom"] }), yield* raw("later", { id: 1, name: "poison" }))
      )
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      expect(calls.count).toBe(3)
      const error = yield* fatalOf(
        processMessage(make("refused", { deadLetterOn: ["Boom"] }), yield* raw("refused", { id: 1, name: "poison" }))
      )
      expect(error.message).toContain("the dead letter could not be sent")
    }).pipe(Effect.provide(Layer.merge(Env, flaky)))
  })
})

describe("the policy's decision", () => {
  const settings = DeimosConfig.make()
  const attempt: ErrorPolicy.Attempt = { consumer: "c", topic: "t", partition: 0, offset: "0", retryCount: 0 }
  const classify = (policy: ErrorPolicy.ErrorPolicy<Boom | Transient, Widget>, cause: Cause.Cause<unknown>) =>
    ErrorPolicy.classify(policy, settings, cause, undefined, attempt)

  it("decide comes first and falls back to the tag lists with undefined; fatalOn wins over the others", () => {
    const boom = Cause.fail(new Boom({ reason: "x" }))
    expect(classify({ decide: () => "fatal", retryOn: ["Boom"] }, boom)).toBe("fatal")
    expect(classify({ decide: () => undefined, retryOn: ["Boom"] }, boom)).toBe("retry")
    expect(classify({ fatalOn: ["Boom"], retryOn: ["Boom"], deadLetterOn: ["Boom"] }, boom)).toBe("fatal")
    expect(classify({ deadLetterOn: ["Boom"], reraiseErrors: true }, boom)).toBe("deadLetter")
    expect(classify({ reraiseErrors: true }, Cause.fail(new Transient()))).toBe("retry")
    expect(classify({}, boom)).toBe("swallow")
  })

  it("errors without a _tag are UnknownError; defects are Defect", () => {
    expect(ErrorPolicy.tagOf(Cause.fail(new Error("plain")))).toBe("UnknownError")
    expect(ErrorPolicy.tagOf(Cause.die(new Error("bug")))).toBe("Defect")
    expect(ErrorPolicy.failureOf(Cause.die("bug"))).toEqual({ _tag: "Defect", defect: "bug" })
  })
})
