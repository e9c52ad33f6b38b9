// Duplicates bounded, handled work committed: consumers under a broker restart and a fatal error.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { Background, Consumer, DeimosConfig, MockBackend } from "@deimos/core"
import { Consumers, KafkaDriver, KafkaJs } from "@deimos/kafka"
import { describe, expect, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { Kafka, logLevel } from "kafkajs"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Event, fast, unique } from "./fixtures.js"

class Broken extends Data.TaggedError("Broken")<{ readonly n: number }> {}

const live = (port: number) =>
  KafkaJs.layer({ brokers: [`127.0.0.1:${port}`], logLevel: "nothing", shutdownTimeout: "10 seconds" }).pipe(
    Layer.merge(MockBackend.layerMock),
    Layer.merge(DeimosConfig.layer())
  )

const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("50 millis") })

/** `count` events e0… in `partitions` partitions (round robin by key), written by a raw kafkajs producer. */
const produce = (port: number, topic: string, count: number, partitions: number) =>
  Effect.promise(async () => {
    const kafka = new Kafka({ brokers: [`127.0.0.1:${port}`], logLevel: logLevel.NOTHING })
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] })
    await admin.disconnect()
    const producer = kafka.producer()
    await producer.connect()
    for (let from = 0; from < count; from += 1000) {
      await producer.send({
        topic,
        messages: Array.from({ length: Math.min(1000, count - from) }, (_, i) => ({
          key: JSON.stringify(`e${from + i}`),
          value: JSON.stringify({ id: `e${from + i}`, n: from + i }),
          partition: (from + i) % partitions
        }))
      })
    }
    await producer.disconnect()
  })

const committedTotal = (groupId: string, topic: string) =>
  Effect.scoped(Effect.gen(function*() {
    const admin = yield* (yield* KafkaDriver.KafkaDriver).admin
    const committed = yield* admin.committedOffsets(groupId, topic)
    return committed.reduce((n, c) => n + Math.max(0, Number(c.offset)), 0)
  }))

describe("duplicates bounded, handled work committed", () => {
  it.live(
    "batch delivery across a broker restart: every message handled, duplicates within one commit threshold",
    () =>
      Effect.gen(function*() {
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "deimos-dupes-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dataDir, { recursive: true, force: true })))
        const topic = unique("dupes")
        const groupId = unique("g")
        const partitions = 3
        const total = 12_000
        const threshold = 500
        const first = yield* Scope.make()
        const broker = yield* KafkaBroker.make({ port: 0, dataDir, partitions }).pipe(Scope.extend(first))
        yield* produce(broker.port, topic, total, partitions)
        const seen = new Map<number, number>()
        // once a third is handled, the handler waits while the broker restarts: what it handles next, the restarted
        // broker's coordinator no longer knows the member for
        const third = yield* Deferred.make<void>()
        const restarted = yield* Deferred.make<void>()
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { plain: true },
          ...fast,
          delivery: "batch",
          offsetCommitThreshold: threshold,
          // each partition's messages arrive in one fetched batch
          maxBytesPerPartition: 8 * 1024 * 1024,
          handle: (event) =>
            Effect.suspend(() => {
              seen.set(event.n, (seen.get(event.n) ?? 0) + 1)
              return seen.size === total / 3
                ? Effect.zipRight(Deferred.succeed(third, undefined), Deferred.await(restarted))
                : Effect.void
            })
        })
        yield* Effect.gen(function*() {
          const worker = yield* Effect.fork(Background.launch(Consumers.layer([consumer])))
          yield* Deferred.await(third)
          yield* Scope.close(first, Exit.void)
          const second = yield* Scope.make()
          yield* Effect.addFinalizer(() => Scope.close(second, Exit.void))
          yield* KafkaBroker.make({ port: broker.port, dataDir, partitions }).pipe(Scope.extend(second))
          yield* Deferred.succeed(restarted, undefined)
          yield* waitUntil(Effect.map(committedTotal(groupId, topic), (n) => n === total))
          yield* Fiber.interrupt(worker)
        }).pipe(Effect.provide(live(broker.port)))
        // nothing skipped
        expect(seen.size).toBe(total)
        const duplicates = [...seen.values()].reduce((n, times) => n + times - 1, 0)
        // at most what was handled since the last commit of the partition in hand at the restart (one threshold's
        // worth); the other partitions' batches of that fetch are not handled under the forgotten membership
        expect(duplicates).toBeGreaterThan(0)
        expect(duplicates).toBeLessThanOrEqual(threshold)
      }).pipe(Effect.scoped),
    90_000
  )

  it.live(
    "a fatal error in batch delivery commits what was handled before it, not the failed message",
    () =>
      Effect.gen(function*() {
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 1 })
        const topic = unique("fatal-batch")
        const groupId = unique("g")
        yield* produce(broker.port, topic, 10, 1)
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { plain: true },
          ...fast,
          delivery: "batch",
          handle: (event) => event.n === 5 ? Effect.fail(new Broken({ n: 5 })) : Effect.void,
          errorPolicy: { fatalOn: ["Broken"] }
        })
        const error = yield* Effect.flip(Consumers.run([consumer])).pipe(Effect.provide(live(broker.port)))
        expect(error._tag === "ConsumerFatalError" && error.offset).toBe("5")
        // the five before it are committed: a restart goes on from the failed message
        expect(yield* committedTotal(groupId, topic).pipe(Effect.provide(live(broker.port)))).toBe(5)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "inlineBatch hands a large fetched batch over in slices of maxBatchSize, committing after each",
    () =>
      Effect.gen(function*() {
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 1 })
        const topic = unique("slices")
        const groupId = unique("g")
        yield* produce(broker.port, topic, 2500, 1)
        const calls: Array<readonly [number, number]> = []
        const done = yield* Deferred.make<void>()
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { plain: true },
          ...fast,
          maxBytesPerPartition: 8 * 1024 * 1024,
          delivery: "inlineBatch",
          maxBatchSize: 1000,
          // each call sees what the calls before it committed
          handleBatch: (events) =>
            Effect.gen(function*() {
              calls.push([events.length, yield* committedTotal(groupId, topic).pipe(Effect.orDie)])
              if (events[events.length - 1].n === 2499) yield* Deferred.succeed(done, undefined)
            })
        })
        yield* Effect.gen(function*() {
          const worker = yield* Effect.fork(Consumers.run([consumer]))
          yield* Deferred.await(done)
          yield* waitUntil(Effect.map(committedTotal(groupId, topic), (n) => n === 2500))
          yield* Fiber.interrupt(worker)
        }).pipe(Effect.provide(live(broker.port)))
        expect(calls).toEqual([[1000, 0], [1000, 1000], [500, 2000]])
      }).pipe(Effect.scoped),
    60_000
  )
})
