import { Consumer, Metrics, Producer } from "@deimos/core"
import { Consumers, InlineConsumer, KafkaDriver, KafkaProducerBackend, LagReporter } from "@deimos/kafka"
import { describe, expect, layer } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Tracer from "effect/Tracer"
import { Event, fast, KafkaTest, unique } from "./fixtures.js"

class Flaky extends Data.TaggedError("Flaky")<{}> {}
class Broken extends Data.TaggedError("Broken")<{}> {}

const encoder = new TextEncoder()

const publish = (topic: string, count: number, offset = 0) =>
  Producer.make({ topic, schema: Event, keyConfig: { field: "id" } }).publishList(
    Array.from({ length: count }, (_, i) => ({ id: `e${offset + i}`, n: offset + i }))
  ).pipe(Effect.provide(KafkaProducerBackend.layer()))

const committedTotal = (groupId: string, topic: string) =>
  Effect.scoped(Effect.gen(function*() {
    const driver = yield* KafkaDriver.KafkaDriver
    const admin = yield* driver.admin
    const committed = yield* admin.committedOffsets(groupId, topic)
    return committed.reduce((n, c) => n + Math.max(0, Number(c.offset)), 0)
  }))

/** Runs the consumers in a fiber until `until` succeeds, then interrupts them (graceful shutdown). */
const consumeUntil = <A, E, R>(consumers: ReadonlyArray<Consumer.Any>, until: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Consumers.run(consumers))
    const result = yield* until
    yield* Fiber.interrupt(fiber)
    return result
  })

describe("Kafka runtime against the dev broker", () => {
  layer(KafkaTest, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("the kafka backend publishes; the inline consumer reads back decoded payloads, keys and headers", () =>
      Effect.gen(function*() {
        const topic = unique("inline")
        yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
          .publish({ id: "a", n: 1 }, { headers: { origin: "test" } })
          .pipe(Effect.provide(KafkaProducerBackend.layer()))
        yield* publish(topic, 4, 10)
        const all = yield* InlineConsumer.read({ topic, schema: Event, keyConfig: { field: "id" } })
        expect(all.map((m) => m.payload?.n).sort((a, b) => a! - b!)).toEqual([1, 10, 11, 12, 13])
        const first = all.find((m) => m.key === "a")!
        expect(first.payload).toMatchObject({ id: "a", n: 1 })
        expect(first.headers.origin).toBe("test")
        expect(first.headers.traceparent).toBeUndefined()
        const last = yield* InlineConsumer.read({ topic, schema: Event, keyConfig: { field: "id" }, last: 1 })
        expect(last.length).toBeLessThanOrEqual(3)
        expect(last.length).toBeGreaterThan(0)
      }))

    for (const delivery of ["message", "batch", "inlineBatch"] as const) {
      it.effect(`${delivery} delivery handles every message once and commits them all`, () =>
        Effect.gen(function*() {
          const topic = unique(`delivery-${delivery}`)
          const groupId = unique("g")
          yield* publish(topic, 30)
          const seen = yield* Ref.make<ReadonlyArray<string>>([])
          const done = yield* Deferred.make<void>()
          const record = (ids: ReadonlyArray<string>) =>
            Effect.flatMap(Ref.updateAndGet(seen, (s) => [...s, ...ids]), (s) =>
              s.length >= 30 ? Deferred.succeed(done, undefined) : Effect.void)
          const consumer = delivery === "inlineBatch"
            ? Consumer.make({
              topic,
              groupId,
              schema: Event,
              keyConfig: { field: "id" },
              delivery,
              ...fast,
              handleBatch: (payloads) =>
                record(payloads.map((p) => p!.id))
            })
            : Consumer.make({
              topic,
              groupId,
              schema: Event,
              keyConfig: { field: "id" },
              delivery,
              ...fast,
              handle: (payload) => record([payload!.id])
            })
          yield* consumeUntil([consumer], Deferred.await(done))
          const ids = yield* Ref.get(seen)
          expect(new Set(ids).size).toBe(30)
          expect(ids).toHaveLength(30)
          expect(yield* committedTotal(groupId, topic)).toBe(30)
        }))
    }

    it.effect("a swallowed error commits and moves on; a retried error is handled again without skipping", () =>
      Effect.gen(function*() {
        const topic = unique("policy")
        yield* publish(topic, 6)
        const attempts = yield* Ref.make(new Map<string, number>())
        // e2 fails twice with Flaky; the group is done when all six ids were handled
        const make = (groupId: string, retry: boolean, done: Deferred.Deferred<void>) =>
          Consumer.make({
            topic,
            groupId,
            schema: Event,
            keyConfig: { field: "id" },
            ...fast,
            errorPolicy: retry ? { retryOn: ["Flaky"] } : {},
            handle: (payload) =>
              Effect.gen(function*() {
                const key = `${groupId}/${payload!.id}`
                const map = yield* Ref.updateAndGet(attempts, (m) => new Map(m).set(key, (m.get(key) ?? 0) + 1))
                if (payload!.id === "e2" && map.get(key)! <= 2) return yield* new Flaky()
                const handled = [...map.entries()].filter(([k]) => k.startsWith(`${groupId}/`)).length
                if (handled >= 6) yield* Deferred.succeed(done, undefined)
              })
          })
        const run = (groupId: string, retry: boolean) =>
          Effect.flatMap(
            Deferred.make<void>(),
            (done) => consumeUntil([make(groupId, retry, done)], Deferred.await(done))
          )

        const swallowGroup = unique("swallow")
        yield* run(swallowGroup, false)
        expect((yield* Ref.get(attempts)).get(`${swallowGroup}/e2`)).toBe(1)
        expect(yield* committedTotal(swallowGroup, topic)).toBe(6)

        const retryGroup = unique("retry")
        yield* run(retryGroup, true)
        expect((yield* Ref.get(attempts)).get(`${retryGroup}/e2`)).toBe(3)
        expect(yield* committedTotal(retryGroup, topic)).toBe(6)
      }))

    it.effect("a fatal error stops the consumer with the consumer, topic, partition and offset, uncommitted", () =>
      Effect.gen(function*() {
        const topic = unique("fatal")
        const groupId = unique("g")
        yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
          .publishList([{ id: "k", n: 1 }, { id: "k", n: 2 }, { id: "k", n: 3 }])
          .pipe(Effect.provide(KafkaProducerBackend.layer()))
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          errorPolicy: { fatalOn: ["Broken"] },
          handle: (payload) => payload!.n === 2 ? new Broken() : Effect.void
        })
        const error = yield* Effect.flip(Consumers.run([consumer]))
        expect(error._tag).toBe("ConsumerFatalError")
        if (error._tag === "ConsumerFatalError") {
          expect(error).toMatchObject({ consumer: `${groupId}:${topic}`, topic, offset: "1" })
          expect(error.message).toContain(`${topic}[${error.partition}]@1`)
        }
        // only the first message was committed
        expect(yield* committedTotal(groupId, topic)).toBe(1)
      }))

    it.effect("undecodable bytes are swallowed and counted by default, fatal when configured", () =>
      Effect.gen(function*() {
        const topic = unique("garbage")
        yield* Effect.scoped(Effect.gen(function*() {
          const driver = yield* KafkaDriver.KafkaDriver
          const producer = yield* driver.producer()
          yield* producer.send(topic, [
            { key: null, value: encoder.encode("{not json"), partitionKey: "x", headers: {} }
          ])
        }))
        // same partition key: the garbage comes first in the same partition
        yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
          .publishList([Producer.envelope({ id: "e100", n: 100 }, { partitionKey: "x" })])
          .pipe(Effect.provide(KafkaProducerBackend.layer()))
        const errorsBefore = yield* Metric.value(
          Metric.tagged(Metric.tagged(Metrics.handler, "status", "error"), "topic", topic)
        )
        const handled = yield* Deferred.make<string>()
        const lenient = Consumer.make({
          topic,
          groupId: unique("g"),
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          handle: (payload) => Deferred.succeed(handled, payload!.id)
        })
        expect(yield* consumeUntil([lenient], Deferred.await(handled))).toBe("e100")
        const errorsAfter = yield* Metric.value(
          Metric.tagged(Metric.tagged(Metrics.handler, "status", "error"), "topic", topic)
        )
        expect(errorsAfter.count - errorsBefore.count).toBe(1)
        const strict = Consumer.make({
          topic,
          groupId: unique("g"),
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          errorPolicy: { fatalOn: ["SchemaError"] },
          handle: () => Effect.void
        })
        const error = yield* Effect.flip(Consumers.run([strict]))
        expect(error.message).toContain("stopped")
      }))

    it.effect("a handler that dies is logged and swallowed by default and the consumer carries on", () =>
      Effect.gen(function*() {
        const topic = unique("dies")
        yield* publish(topic, 2)
        const handled = yield* Ref.make<ReadonlyArray<string>>([])
        const done = yield* Deferred.make<void>()
        const consumer = Consumer.make({
          topic,
          groupId: unique("g"),
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          handle: (payload) =>
            payload!.id === "e0"
              ? Effect.die(new Error("bug"))
              : Effect.zipRight(Ref.update(handled, (h) => [...h, payload!.id]), Deferred.succeed(done, undefined))
        })
        yield* consumeUntil([consumer], Deferred.await(done))
        expect(yield* Ref.get(handled)).toEqual(["e1"])
      }))

    it.effect("the consumer's span continues the producer's trace", () =>
      Effect.gen(function*() {
        const topic = unique("trace")
        const producerSpan = yield* Effect.gen(function*() {
          yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } }).publish({ id: "t", n: 1 })
          return yield* Effect.currentSpan
        }).pipe(Effect.withSpan("checkout"), Effect.provide(KafkaProducerBackend.layer()))
        const seen = yield* Deferred.make<Tracer.Span>()
        const consumer = Consumer.make({
          topic,
          groupId: unique("g"),
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          handle: () => Effect.flatMap(Effect.currentSpan, (span) => Deferred.succeed(seen, span))
        })
        const span = yield* consumeUntil([consumer], Deferred.await(seen))
        expect(span.name).toBe("deimos-consumer")
        expect(span.traceId).toBe(producerSpan.traceId)
        expect(Option.map(span.parent, (p) => p.spanId)).toEqual(Option.some(producerSpan.spanId))
      }))

    it.effect("the lag reporter sets consumer_lag per partition", () =>
      Effect.gen(function*() {
        const topic = unique("lag")
        const groupId = unique("g")
        yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
          .publishList(Array.from({ length: 5 }, (_, n) => Producer.envelope({ id: "same", n }, { partitionKey: "p" })))
          .pipe(Effect.provide(KafkaProducerBackend.layer()))
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { field: "id" },
          handle: () => Effect.void
        })
        const lags = yield* LagReporter.report([consumer])
        expect(lags.reduce((n, l) => n + l.lag, 0)).toBe(5)
        const busy = lags.find((l) => l.lag === 5)!
        const gauge = yield* Metric.value(
          Metrics.consumerLag.pipe(
            Metric.tagged("consumer_group", groupId),
            Metric.tagged("topic", topic),
            Metric.tagged("partition", String(busy.partition))
          )
        )
        expect(gauge.value).toBe(5)
      }))

    it.effect("the async backend buffers and flushes everything when its scope closes", () =>
      Effect.gen(function*() {
        const topic = unique("async")
        yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
          .publishList(Array.from({ length: 50 }, (_, n) => ({ id: `a${n}`, n })))
          .pipe(Effect.provide(KafkaProducerBackend.layerAsync({ maxLinger: "10 seconds", maxBatchSize: 1000 })))
        const all = yield* InlineConsumer.read({ topic, schema: Event, keyConfig: { field: "id" } })
        expect(all).toHaveLength(50)
      }))
  })
})
