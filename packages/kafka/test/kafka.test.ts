import { Background, Consumer, Metrics, Producer } from "@deimos/core"
import { Consumers, InlineConsumer, KafkaDriver, KafkaProducerBackend, LagReporter } from "@deimos/kafka"
import { describe, expect, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Tracer from "effect/Tracer"
import { Event, fast, InstalledTracer, KafkaTest, publishInOnePartition, unique } from "./fixtures.js"

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

const handlerErrors = (topic: string) =>
  Effect.map(
    Metric.value(Metric.tagged(Metric.tagged(Metrics.handler, "status", "error"), "topic", topic)),
    (s) => s.count
  )

/** Polls until `check` is true (tests have their own timeout). */
const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("50 millis") })

/** The lag interval `consumeUntil` runs its consumers with. */
class LagInterval extends Context.Reference<LagInterval>()("test/LagInterval", {
  defaultValue: (): Duration.DurationInput | undefined => undefined
}) {}

/** Runs the consumers in a fiber until `until` succeeds, then interrupts them (graceful shutdown). */
const consumeUntil = <A, E, R>(consumers: ReadonlyArray<Consumer.Any>, until: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lagInterval = yield* LagInterval
    const fiber = yield* Effect.fork(Consumers.run(consumers, { lagInterval }))
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
              handle: (payload) => record([payload.id])
            })
          yield* consumeUntil([consumer], Deferred.await(done))
          const ids = yield* Ref.get(seen)
          expect(new Set(ids).size).toBe(30)
          expect(ids).toHaveLength(30)
          expect(yield* committedTotal(groupId, topic)).toBe(30)
          // batches count as batches in the handler metrics; single messages do not
          const batches = yield* Metric.value(
            Metric.tagged(Metric.tagged(Metrics.handler, "status", "batch_success"), "topic", topic)
          )
          if (delivery === "message") expect(batches.count).toBe(0)
          else expect(batches.count).toBeGreaterThan(0)
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
                const key = `${groupId}/${payload.id}`
                const map = yield* Ref.updateAndGet(attempts, (m) => new Map(m).set(key, (m.get(key) ?? 0) + 1))
                if (payload.id === "e2" && map.get(key)! <= 2) return yield* new Flaky()
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

    it.effect("a fatal error fails Consumers.layer naming consumer, topic, partition and offset, uncommitted", () =>
      Effect.gen(function*() {
        const topic = unique("fatal")
        const groupId = unique("g")
        yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
          .publishList([{ id: "k", n: 1 }, { id: "k", n: 2 }, { id: "k", n: 3 }])
          .pipe(Effect.provide(KafkaProducerBackend.layer()))
        const handled = yield* Ref.make<ReadonlyArray<number>>([])
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          errorPolicy: { fatalOn: ["Broken"] },
          handle: (payload) =>
            Effect.zipRight(
              Ref.update(handled, (h) => [...h, payload.n]),
              payload.n === 2 ? new Broken() : Effect.void
            )
        })
        const error = yield* Effect.flip(Background.launch(Consumers.layer([consumer])))
        expect(error._tag).toBe("ConsumerFatalError")
        if (error._tag === "ConsumerFatalError") {
          expect(error).toMatchObject({ consumer: `${groupId}:${topic}`, topic, offset: "1" })
          expect(error.message).toContain(`Consumer ${groupId}:${topic} stopped at ${topic}[${error.partition}]@1`)
        }
        // the consumer stopped at the failed message: the third was never handled, only the first committed
        expect(yield* Ref.get(handled)).toEqual([1, 2])
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
          handle: (payload) => Deferred.succeed(handled, payload.id)
        })
        expect(yield* consumeUntil([lenient], Deferred.await(handled))).toBe("e100")
        const errorsAfter = yield* Metric.value(
          Metric.tagged(Metric.tagged(Metrics.handler, "status", "error"), "topic", topic)
        )
        expect(errorsAfter.count - errorsBefore.count).toBe(1)
        const strictGroup = unique("g")
        const strictHandled = yield* Ref.make(0)
        const strict = Consumer.make({
          topic,
          groupId: strictGroup,
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          errorPolicy: { fatalOn: ["SchemaError"] },
          handle: () => Ref.update(strictHandled, (n) => n + 1)
        })
        const error = yield* Effect.flip(Consumers.run([strict]))
        expect(error._tag).toBe("ConsumerFatalError")
        if (error._tag !== "ConsumerFatalError") return
        // the garbage is offset 0 of its partition, before e100
        expect({ topic: error.topic, offset: error.offset }).toEqual({ topic, offset: "0" })
        expect(error.message).toContain(`stopped at ${topic}[${error.partition}]@0: fatal error`)
        expect(Option.map(Cause.failureOption(error.cause as Cause.Cause<{ readonly _tag: string }>), (e) => e._tag))
          .toEqual(Option.some("SchemaError"))
        // it stopped there: the message after it was not handled and nothing was committed
        expect(yield* Ref.get(strictHandled)).toBe(0)
        expect(yield* committedTotal(strictGroup, topic)).toBe(0)
      }))

    it.effect("inlineBatch with an undecodable message in the middle: the handler gets the others; fatal when configured", () =>
      Effect.gen(function*() {
        const topic = unique("garbage-batch")
        const events = Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
        const pinned = (id: string, n: number) =>
          events.publishList([Producer.envelope({ id, n }, { partitionKey: "x" })]).pipe(
            Effect.provide(KafkaProducerBackend.layer())
          )
        // offsets 0, 1 (garbage), 2 of one partition, all there before the consumer fetches: one batch
        yield* pinned("e0", 0)
        yield* Effect.scoped(Effect.gen(function*() {
          const driver = yield* KafkaDriver.KafkaDriver
          const producer = yield* driver.producer()
          yield* producer.send(topic, [{
            key: null,
            value: encoder.encode("{not json"),
            partitionKey: "x",
            headers: {}
          }])
        }))
        yield* pinned("e2", 2)
        const errorsBefore = yield* handlerErrors(topic)
        const got = yield* Deferred.make<
          { readonly ids: ReadonlyArray<string>; readonly offsets: ReadonlyArray<string> }
        >()
        const lenientGroup = unique("g")
        const lenient = Consumer.make({
          topic,
          groupId: lenientGroup,
          schema: Event,
          keyConfig: { field: "id" },
          delivery: "inlineBatch",
          ...fast,
          handleBatch: (payloads, metadata) =>
            Deferred.succeed(got, { ids: payloads.map((p) => p!.id), offsets: metadata.offsets })
        })
        const batch = yield* consumeUntil(
          [lenient],
          Effect.zipLeft(
            Deferred.await(got),
            waitUntil(Effect.map(committedTotal(lenientGroup, topic), (n) => n === 3))
          )
        )
        expect(batch).toEqual({ ids: ["e0", "e2"], offsets: ["0", "2"] })
        expect((yield* handlerErrors(topic)) - errorsBefore).toBe(1)
        expect(yield* committedTotal(lenientGroup, topic)).toBe(3)

        const strictGroup = unique("g")
        const strict = Consumer.make({
          topic,
          groupId: strictGroup,
          schema: Event,
          keyConfig: { field: "id" },
          delivery: "inlineBatch",
          ...fast,
          errorPolicy: { fatalOn: ["SchemaError"] },
          handleBatch: () => Effect.void
        })
        const error = yield* Effect.flip(Consumers.run([strict]))
        expect(error._tag).toBe("ConsumerFatalError")
        if (error._tag !== "ConsumerFatalError") return
        expect({ topic: error.topic, offset: error.offset }).toEqual({ topic, offset: "1" })
        expect(yield* committedTotal(strictGroup, topic)).toBe(0)
      }))

    it.effect("a handler that throws, fails or dies is logged and swallowed by default; the consumer carries on", () =>
      Effect.gen(function*() {
        const topic = unique("bad-handler")
        const groupId = unique("g")
        yield* publishInOnePartition(topic, 4)
        const handled = yield* Ref.make<ReadonlyArray<string>>([])
        const done = yield* Deferred.make<void>()
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          handle: (payload) => {
            switch (payload.n) {
              case 0:
                return Effect.sync(() => {
                  throw new Error("thrown")
                })
              case 1:
                return new Flaky()
              case 2:
                return Effect.die(new Error("bug"))
              default:
                return Effect.zipRight(
                  Ref.update(handled, (h) => [...h, payload.id]),
                  Deferred.succeed(done, undefined)
                )
            }
          }
        })
        const errorsBefore = yield* handlerErrors(topic)
        yield* consumeUntil([consumer], Deferred.await(done))
        expect(yield* Ref.get(handled)).toEqual(["e3"])
        expect((yield* handlerErrors(topic)) - errorsBefore).toBe(3)
        expect(yield* committedTotal(groupId, topic)).toBe(4)
      }))

    it.effect("heartbeats keep the member in its group while a handler runs longer than the session timeout", () =>
      Effect.gen(function*() {
        const topic = unique("slow")
        const groupId = unique("g")
        yield* publish(topic, 1)
        const calls = yield* Ref.make(0)
        const done = yield* Deferred.make<void>()
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { field: "id" },
          maxWaitTime: "100 millis",
          sessionTimeout: "1 second",
          heartbeatInterval: "200 millis",
          handle: () =>
            Effect.gen(function*() {
              yield* Ref.update(calls, (n) => n + 1)
              // three session timeouts: without heartbeats the broker expires the member and the message is
              // delivered again after the rejoin
              yield* Effect.sleep("3 seconds")
              yield* Deferred.succeed(done, undefined)
            })
        })
        yield* consumeUntil(
          [consumer],
          Effect.zipRight(Deferred.await(done), waitUntil(Effect.map(committedTotal(groupId, topic), (n) => n === 1)))
        )
        expect(yield* Ref.get(calls)).toBe(1)
      }))

    it.scoped("commits at the end of a fetched batch by default, after each message with commitEveryMessage, or every offsetCommitThreshold messages", () =>
      Effect.gen(function*() {
        const topic = unique("threshold")
        // one publishList, one partition: the consumer gets the twelve in one batch
        yield* publishInOnePartition(topic, 12, "t")
        const driver = yield* KafkaDriver.KafkaDriver
        const admin = yield* driver.admin
        /** The committed offset of its partition as each message is handled. */
        const run = (commits: { readonly offsetCommitThreshold?: number; readonly commitEveryMessage?: boolean }) =>
          Effect.gen(function*() {
            const groupId = unique("g")
            const seen = yield* Ref.make<ReadonlyArray<number>>([])
            const consumer = Consumer.make({
              topic,
              groupId,
              schema: Event,
              keyConfig: { field: "id" },
              ...fast,
              ...commits,
              handle: (_, metadata) =>
                admin.committedOffsets(groupId, topic).pipe(
                  Effect.flatMap((c) =>
                    Ref.update(seen, (s) => [...s, Number(c.find((p) => p.partition === metadata.partition)!.offset)])
                  ),
                  Effect.orDie
                )
            })
            yield* consumeUntil(
              [consumer],
              waitUntil(Effect.map(committedTotal(groupId, topic), (n) => n === 12))
            )
            return yield* Ref.get(seen)
          })
        // the twelve arrive in one fetch: nothing is committed until its end
        expect(yield* run({})).toEqual(Array.from({ length: 12 }, () => -1))
        expect(yield* run({ commitEveryMessage: true })).toEqual([-1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
        expect(yield* run({ offsetCommitThreshold: 5 })).toEqual([-1, -1, -1, -1, -1, 5, 5, 5, 5, 5, 10, 10])
      }))

    it.scoped("message delivery with offsetCommitInterval commits at most once per interval, and at the end", () =>
      Effect.gen(function*() {
        const topic = unique("interval")
        const groupId = unique("g")
        yield* publishInOnePartition(topic, 10, "i")
        const driver = yield* KafkaDriver.KafkaDriver
        const admin = yield* driver.admin
        const seen = yield* Ref.make<ReadonlyArray<number>>([])
        const interval = 300
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          offsetCommitInterval: `${interval} millis`,
          handle: (_, metadata) =>
            admin.committedOffsets(groupId, topic).pipe(
              Effect.flatMap((c) =>
                Ref.update(seen, (s) => [...s, Number(c.find((p) => p.partition === metadata.partition)!.offset)])
              ),
              Effect.zipRight(Effect.sleep("100 millis")),
              Effect.orDie
            )
        })
        const start = yield* Clock.currentTimeMillis
        yield* consumeUntil([consumer], waitUntil(Effect.map(committedTotal(groupId, topic), (n) => n === 10)))
        const elapsed = (yield* Clock.currentTimeMillis) - start
        const committedSeen = yield* Ref.get(seen)
        expect(committedSeen).toHaveLength(10)
        expect(committedSeen).toEqual([...committedSeen].sort((a, b) => a - b))
        // commits seen while the batch was handled: some (a second of handling), but at most one per interval
        const commits = new Set(committedSeen.filter((o) => o > 0)).size
        expect(commits).toBeGreaterThanOrEqual(2)
        expect(commits).toBeLessThanOrEqual(Math.floor(elapsed / interval))
        expect(commits).toBeLessThan(9)
      }))

    it.effect("back-pressure: while a slow inlineBatch handler runs, nothing is fetched; what arrived meanwhile comes as one batch per partition", () =>
      Effect.gen(function*() {
        const topic = unique("backpressure")
        const events = Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
        yield* events.publish({ id: "first", n: 0 }).pipe(Effect.provide(KafkaProducerBackend.layer()))
        const batches = yield* Ref.make<ReadonlyArray<{ readonly partition: number; readonly size: number }>>([])
        const slow = yield* Deferred.make<void>()
        const published = yield* Deferred.make<void>()
        const consumer = Consumer.make({
          topic,
          groupId: unique("g"),
          schema: Event,
          keyConfig: { field: "id" },
          delivery: "inlineBatch",
          ...fast,
          handleBatch: (payloads, metadata) =>
            Effect.gen(function*() {
              const all = yield* Ref.updateAndGet(
                batches,
                (b) => [...b, { partition: metadata.partition, size: payloads.length }]
              )
              if (all.length === 1) {
                // slow: busy until everything below was published, and a few fetch waits more
                yield* Deferred.succeed(slow, undefined)
                yield* Deferred.await(published)
                yield* Effect.sleep("400 millis")
              }
            })
        })
        yield* consumeUntil(
          [consumer],
          Effect.gen(function*() {
            yield* Deferred.await(slow)
            // thirty messages, one send each, spread by key over the partitions, while the handler sleeps
            yield* Effect.forEach(
              Array.from({ length: 30 }, (_, n) => n + 1),
              (n) => Effect.zipRight(events.publish({ id: `k${n}`, n }), Effect.sleep("20 millis")),
              { discard: true }
            ).pipe(Effect.provide(KafkaProducerBackend.layer()))
            yield* Deferred.succeed(published, undefined)
            yield* waitUntil(Effect.map(Ref.get(batches), (b) => b.reduce((n, x) => n + x.size, 0) >= 31))
          })
        )
        const [first, ...rest] = yield* Ref.get(batches)
        expect(first.size).toBe(1)
        // a fetching-ahead consumer would have taken them a few at a time as they arrived
        expect(new Set(rest.map((b) => b.partition)).size).toBe(rest.length)
        expect(rest.reduce((n, b) => n + b.size, 0)).toBe(30)
      }))

    it.effect("maxBytesPerPartition bounds what one fetch brings (memory), and every message still arrives once", () =>
      Effect.gen(function*() {
        const topic = unique("max-bytes")
        const body = "x".repeat(1000)
        // one send per message: record batches of ~1 KB each, the unit a fetch returns
        yield* Effect.forEach(
          Array.from({ length: 40 }, (_, n) => n),
          (n) =>
            Producer.make({ topic, schema: Event, keyConfig: { field: "id" } }).publish(
              { id: `${n}-${body}`, n },
              { partitionKey: "p" }
            ),
          { discard: true }
        ).pipe(Effect.provide(KafkaProducerBackend.layer()))
        const sizes = yield* Ref.make<ReadonlyArray<number>>([])
        const consumer = Consumer.make({
          topic,
          groupId: unique("g"),
          schema: Event,
          keyConfig: { field: "id" },
          delivery: "inlineBatch",
          ...fast,
          maxBytesPerPartition: 4096,
          handleBatch: (payloads) => Ref.update(sizes, (s) => [...s, payloads.length])
        })
        yield* consumeUntil(
          [consumer],
          waitUntil(Effect.map(Ref.get(sizes), (s) => s.reduce((a, b) => a + b, 0) >= 40))
        )
        const all = yield* Ref.get(sizes)
        expect(all.reduce((a, b) => a + b, 0)).toBe(40)
        expect(Math.max(...all)).toBeLessThanOrEqual(4)
        expect(all.length).toBeGreaterThanOrEqual(10)
      }))

    it.effect("with a tracer installed, the consumer's span continues the producer's trace", () =>
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
      }).pipe(Effect.withTracer(InstalledTracer)))

    it.effect("consumer_lag is high watermark minus committed offset, per partition, and updated periodically", () =>
      Effect.gen(function*() {
        const topic = unique("lag")
        const groupId = unique("g")
        yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
          .publishList(Array.from({ length: 5 }, (_, n) => Producer.envelope({ id: "same", n }, { partitionKey: "p" })))
          .pipe(Effect.provide(KafkaProducerBackend.layer()))
        const definition = (handle: (n: number) => Effect.Effect<void, Broken>) =>
          Consumer.make({
            topic,
            groupId,
            schema: Event,
            keyConfig: { field: "id" },
            ...fast,
            errorPolicy: { fatalOn: ["Broken"] },
            handle: (payload) => handle(payload.n)
          })
        const gauge = (partition: number) =>
          Effect.map(
            Metric.value(
              Metrics.consumerLag.pipe(
                Metric.tagged("consumer_group", groupId),
                Metric.tagged("topic", topic),
                Metric.tagged("partition", String(partition))
              )
            ),
            (g) => g.value
          )

        // nothing committed: the whole partition
        const before = yield* LagReporter.report([definition(() => Effect.void)])
        expect(before.map((l) => l.lag).sort()).toEqual([0, 0, 5])
        const busy = before.find((l) => l.lag === 5)!.partition
        expect(yield* gauge(busy)).toBe(5)

        // three handled and committed, the fourth stops the consumer: two behind
        yield* Effect.flip(Consumers.run([definition((n) => n === 3 ? new Broken() : Effect.void)]))
        const partial = yield* LagReporter.report([definition(() => Effect.void)])
        expect(partial.find((l) => l.partition === busy)!.lag).toBe(2)
        expect(yield* gauge(busy)).toBe(2)

        // the periodic reporter of a running worker brings it to zero once the rest is committed
        yield* consumeUntil(
          [definition(() => Effect.void)],
          waitUntil(Effect.map(gauge(busy), (lag) => lag === 0))
        ).pipe(
          Effect.provideService(LagInterval, "50 millis")
        )
      }))
  })
})
