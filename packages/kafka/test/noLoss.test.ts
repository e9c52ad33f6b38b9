// A publish that succeeded is never lost: the producer backends with the broker away, and batches cut by bytes.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { DeimosConfig, Instrumentation, Metrics, MockBackend, Producer, ProducerBackend, SchemaRef } from "@deimos/core"
import { KafkaDriver, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Event, unique } from "./fixtures.js"

const Blob = SchemaRef.fromSchema(Schema.Struct({ id: Schema.String, body: Schema.String }), {
  name: "Blob",
  namespace: "test"
})

const publishErrors = (topic: string) =>
  Effect.map(Metric.value(Metric.tagged(Metrics.publishError, "topic", topic)), (s) => s.count)

const driverOn = (port: number) =>
  KafkaJs.layer({
    brokers: [`127.0.0.1:${port}`],
    clientId: "no-loss",
    logLevel: "nothing",
    connectAttempts: 2,
    connectionTimeout: "500 millis",
    requestTimeout: "2 seconds",
    shutdownTimeout: "2 seconds"
  })

/** How many messages a topic holds (0 when it does not exist yet). */
const countOn = (topic: string) =>
  Effect.scoped(Effect.gen(function*() {
    const admin = yield* (yield* KafkaDriver.KafkaDriver).admin
    const offsets = yield* admin.topicOffsets(topic).pipe(Effect.orElseSucceed(() => []))
    return offsets.reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0)
  }))

const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>, within: Duration.DurationInput) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("100 millis") }).pipe(
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`not within ${Duration.format(within)}`) })
  )

const settings = Layer.mergeAll(MockBackend.layerMock, DeimosConfig.layer())

describe("a publish that succeeded is never lost", () => {
  it.live(
    "kafkaAsync: with the broker down for a few seconds, every buffered publish reaches Kafka once it is back",
    () =>
      Effect.gen(function*() {
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "deimos-noloss-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dataDir, { recursive: true, force: true })))
        const topic = unique("away")
        const first = yield* Scope.make()
        const broker = yield* KafkaBroker.make({ port: 0, dataDir, partitions: 2 }).pipe(Scope.extend(first))
        const dropped = yield* Ref.make(0)
        const producer = Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
        const backendScope = yield* Scope.make()
        const backend = yield* Layer.buildWithScope(
          KafkaProducerBackend.layerAsync({
            maxLinger: "20 millis",
            flushTimeout: "30 seconds",
            onDropped: (dropped_) => Ref.update(dropped, (n) => n + dropped_.messages.length)
          }).pipe(Layer.provide(driverOn(broker.port))),
          backendScope
        )
        const publish = (from: number, count: number) =>
          producer.publishList(Array.from({ length: count }, (_, i) => ({ id: `e${from + i}`, n: from + i }))).pipe(
            Effect.provide(backend),
            Effect.provide(settings)
          )
        yield* publish(0, 10)
        yield* waitUntil(Effect.map(countOn(topic), (n) => n === 10), "20 seconds").pipe(
          Effect.provide(driverOn(broker.port))
        )
        // the broker goes away; 1000 publishes succeed (they are buffered); it comes back 3.5 s later
        yield* Scope.close(first, Exit.void)
        yield* publish(10, 1000)
        yield* Effect.sleep("3500 millis")
        const second = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(second, Exit.void))
        yield* KafkaBroker.make({ port: broker.port, dataDir, partitions: 2 }).pipe(Scope.extend(second))
        yield* waitUntil(Effect.map(countOn(topic), (n) => n >= 1010), "30 seconds").pipe(
          Effect.provide(driverOn(broker.port))
        )
        yield* Scope.close(backendScope, Exit.void)
        expect(yield* countOn(topic).pipe(Effect.provide(driverOn(broker.port)))).toBe(1010)
        expect(yield* Ref.get(dropped)).toBe(0)
        expect(yield* publishErrors(topic)).toBe(0)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "kafkaAsync: what cannot be sent by the flush timeout is dropped, counted, emitted and handed to onDropped",
    () =>
      Effect.gen(function*() {
        const topic = unique("gone")
        const brokerScope = yield* Scope.make()
        const broker = yield* KafkaBroker.make({ port: 0 }).pipe(Scope.extend(brokerScope))
        const dropped = yield* Ref.make<Array<string>>([])
        const events: Array<Instrumentation.Event> = []
        const producer = Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
        yield* Effect.scoped(
          Effect.gen(function*() {
            yield* producer.publish({ id: "first", n: 0 }, { sync: true })
            yield* Scope.close(brokerScope, Exit.void)
            yield* producer.publishList(Array.from({ length: 100 }, (_, n) => ({ id: `e${n}`, n })))
          }).pipe(
            Effect.provide(
              KafkaProducerBackend.layerAsync({
                maxLinger: "20 millis",
                flushTimeout: "1 second",
                onDropped: ({ messages }) =>
                  Ref.update(dropped, (d) => [...d, ...messages.map((m) => String(m.rawKey))])
              }).pipe(Layer.provide(driverOn(broker.port)))
            ),
            Effect.provide(settings),
            Effect.provideService(Instrumentation.Instrumentation, {
              emit: (event) => Effect.sync(() => events.push(event))
            })
          )
        )
        const keys = yield* Ref.get(dropped)
        expect([...keys].sort()).toEqual(Array.from({ length: 100 }, (_, n) => `e${n}`).sort())
        expect(yield* publishErrors(topic)).toBe(100)
        // only what was finally dropped is reported: once each, not once per attempt
        const payloads = events.flatMap((e) => e._tag === "ProduceError" ? e.payloads : [])
        expect(payloads).toHaveLength(100)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "publishList of 500 messages of 3 KiB with one partition key is sent in requests the broker takes",
    () =>
      Effect.gen(function*() {
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 3 })
        const topic = unique("bytes")
        yield* Producer.make({ topic, schema: Blob, keyConfig: { none: true }, partitionKey: () => "one" })
          .publishList(Array.from({ length: 500 }, (_, n) => ({ id: `b${n}`, body: "x".repeat(3 * 1024) })))
          .pipe(
            Effect.provide(KafkaProducerBackend.layer().pipe(Layer.provide(driverOn(broker.port)))),
            Effect.provide(settings)
          )
        expect(yield* countOn(topic).pipe(Effect.provide(driverOn(broker.port)))).toBe(500)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a message larger than the broker takes fails naming the message and its size, and nothing else",
    () =>
      Effect.gen(function*() {
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 1 })
        const topic = unique("huge")
        const error = yield* Effect.flip(
          Producer.make({ topic, schema: Blob, keyConfig: { field: "id" } }).publishList([
            { id: "small", body: "s" },
            { id: "huge", body: "x".repeat(1_200_000) }
          ]).pipe(
            Effect.provide(KafkaProducerBackend.layer().pipe(Layer.provide(driverOn(broker.port)))),
            Effect.provide(settings)
          )
        )
        expect(error._tag).toBe("ProducerError")
        expect(error.message).toMatch(/message with key "huge" \(1[.,]2\d* MB\) is larger than/)
        expect(error.message).toContain(topic)
        expect(error._tag === "ProducerError" && error.failedCount).toBe(1)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "kafka: a send the broker cannot take now fails with a retriable ProducerError naming topic and count",
    () =>
      Effect.gen(function*() {
        const brokerScope = yield* Scope.make()
        const broker = yield* KafkaBroker.make({ port: 0 }).pipe(Scope.extend(brokerScope))
        const backend = yield* Layer.build(KafkaProducerBackend.layer().pipe(Layer.provide(driverOn(broker.port))))
        yield* Scope.close(brokerScope, Exit.void)
        const error = yield* Effect.flip(
          Effect.flatMap(ProducerBackend.ProducerBackend, (b) =>
            b.execute("away", [{
              key: null,
              value: new Uint8Array([1]),
              partitionKey: null,
              headers: {},
              rawKey: null,
              payload: null,
              producer: "p"
            }])).pipe(Effect.provide(backend))
        )
        expect(error.retriable).toBe(true)
        expect(error.message).toMatch(/^Cannot send 1 message to topic away: /)
      }).pipe(Effect.scoped),
    60_000
  )
})
