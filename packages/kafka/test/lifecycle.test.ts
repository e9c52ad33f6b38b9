import { DevCluster, KafkaBroker } from "@deimos/broker"
import { Background, Consumer, DeimosConfig, MockBackend, Producer } from "@deimos/core"
import { Consumers, KafkaDriver, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { Kafka, logLevel } from "kafkajs"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Event, fast, publishInOnePartition, unique } from "./fixtures.js"

const withCluster = (options: DevCluster.Options = {}) =>
  Layer.unwrapEffect(
    Effect.map(DevCluster.DevCluster, (cluster) =>
      KafkaJs.layer({ brokers: cluster.brokers, logLevel: "nothing", shutdownTimeout: "10 seconds" }))
  ).pipe(
    Layer.provideMerge(DevCluster.layer({ port: 0, registryPort: 0, partitions: 2, ...options })),
    Layer.merge(MockBackend.layerMockValidating),
    Layer.merge(DeimosConfig.layer({}))
  )

const publish = (topic: string, from: number, count: number) =>
  Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
    .publishList(Array.from({ length: count }, (_, i) => ({ id: `e${from + i}`, n: from + i })))
    .pipe(Effect.provide(KafkaProducerBackend.layer()))

/** Polls until `check` is true (tests have their own timeout). */
const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("50 millis") })

/** Waits until the group is Stable with `members` members (kafkajs admin, as any client would check). */
const stableWith = (groupId: string, members: number) =>
  Effect.flatMap(DevCluster.DevCluster, (cluster) =>
    Effect.promise(async () => {
      const admin = new Kafka({ brokers: [...cluster.brokers], logLevel: logLevel.NOTHING }).admin()
      await admin.connect()
      try {
        for (let i = 0; i < 300; i++) {
          const { groups } = await admin.describeGroups([groupId])
          if (groups[0]?.state === "Stable" && groups[0].members.length === members) return
          await new Promise((r) => setTimeout(r, 100))
        }
        throw new Error(`group ${groupId} never became stable with ${members} members`)
      } finally {
        await admin.disconnect()
      }
    }))

const committed = (groupId: string, topic: string) =>
  Effect.scoped(
    Effect.flatMap(KafkaDriver.KafkaDriver, (driver) =>
      Effect.flatMap(driver.admin, (admin) => admin.committedOffsets(groupId, topic)))
  ).pipe(Effect.map((c) =>
    c.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0)
  ))

describe("consumer lifecycle", () => {
  it.live(
    "two members share a group; when one leaves the other takes its partitions without losing or re-handling committed messages",
    () =>
      Effect.gen(function*() {
        const topic = unique("pair")
        const groupId = unique("g")
        const seen = yield* Ref.make<ReadonlyArray<string>>([])
        const target = yield* Ref.make(0)
        const reached = yield* Ref.make(yield* Deferred.make<void>())
        // a session timeout the handover must beat by far: the leaving member says so, it is not expired
        const sessionTimeout = 10_000
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          sessionTimeout: `${sessionTimeout} millis`,
          handle: (payload) =>
            Effect.gen(function*() {
              const all = yield* Ref.updateAndGet(seen, (s) => [...s, payload.id])
              if (all.length >= (yield* Ref.get(target))) yield* Deferred.succeed(yield* Ref.get(reached), undefined)
            })
        })
        const waitFor = (n: number) =>
          Effect.gen(function*() {
            yield* Ref.set(target, n)
            const d = yield* Deferred.make<void>()
            yield* Ref.set(reached, d)
            if ((yield* Ref.get(seen)).length >= n) return
            yield* Deferred.await(d)
          })
        yield* publish(topic, 0, 1)
        const a = yield* Effect.fork(Consumers.runMember(consumer))
        const b = yield* Effect.fork(Consumers.runMember(consumer))
        // let the group settle with both members before the rest arrives: no message is then handled during a rebalance
        yield* stableWith(groupId, 2)
        yield* publish(topic, 1, 19)
        yield* waitFor(20)
        yield* Effect.sleep("300 millis")
        const left = yield* Clock.currentTimeMillis
        yield* Fiber.interrupt(b)
        yield* publish(topic, 20, 20)
        yield* waitFor(40)
        // b left the group (it did not just stop answering): its partition was handed over and drained before its
        // session could have expired, which is what a member that vanished costs
        expect((yield* Clock.currentTimeMillis) - left).toBeLessThan(sessionTimeout)
        yield* Effect.sleep("300 millis")
        yield* Fiber.interrupt(a)
        const ids = yield* Ref.get(seen)
        expect(new Set(ids).size).toBe(40)
        expect(ids).toHaveLength(40)
        expect(yield* committed(groupId, topic)).toBe(40)
      }).pipe(Effect.provide(withCluster())),
    90_000
  )

  it.live("shutdown mid-batch finishes the message in hand and commits what was handled", () =>
    Effect.gen(function*() {
      const topic = unique("shutdown")
      const groupId = unique("g")
      yield* publishInOnePartition(topic, 10, "s")
      const handled = yield* Ref.make(0)
      const third = yield* Deferred.make<void>()
      const consumer = Consumer.make({
        topic,
        groupId,
        schema: Event,
        keyConfig: { field: "id" },
        delivery: "batch",
        ...fast,
        handle: () =>
          Effect.gen(function*() {
            const n = yield* Ref.updateAndGet(handled, (h) => h + 1)
            if (n === 3) yield* Deferred.succeed(third, undefined)
            yield* Effect.sleep("150 millis")
          })
      })
      const fiber = yield* Effect.fork(Consumers.run([consumer]))
      yield* Deferred.await(third)
      yield* Fiber.interrupt(fiber)
      const count = yield* Ref.get(handled)
      expect(count).toBeGreaterThanOrEqual(3)
      expect(count).toBeLessThan(10)
      expect(yield* committed(groupId, topic)).toBe(count)
    }).pipe(Effect.provide(withCluster())), 60_000)

  it.live("an unreachable broker is retried with backoff, then a clear error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.scoped(Effect.flatMap(KafkaDriver.KafkaDriver, (driver) => driver.producer()))
      ).pipe(
        Effect.provide(
          KafkaJs.layer({
            brokers: ["127.0.0.1:1"],
            logLevel: "nothing",
            connectAttempts: 2,
            connectionTimeout: "200 millis"
          })
        )
      )
      expect(error._tag).toBe("KafkaError")
      expect(error.reason).toBe("Connect")
      expect(error.message).toContain("127.0.0.1:1")
      expect(error.message).toContain("after 2 attempts")
    }), 60_000)

  it.live(
    "an unreachable broker at start: Consumers.layer retries with backoff, then fails with a clear error",
    () =>
      Effect.gen(function*() {
        const consumer = Consumer.make({
          topic: "never",
          groupId: "never",
          schema: Event,
          keyConfig: { field: "id" },
          handle: () => Effect.void
        })
        const error = yield* Effect.flip(Background.launch(Consumers.layer([consumer]))).pipe(
          Effect.provide(
            KafkaJs.layer({
              brokers: ["127.0.0.1:1"],
              logLevel: "nothing",
              connectAttempts: 3,
              connectionTimeout: "200 millis"
            })
          ),
          Effect.provide(Layer.merge(MockBackend.layerMockValidating, DeimosConfig.layer()))
        )
        expect(error._tag).toBe("KafkaError")
        if (error._tag !== "KafkaError") return
        expect(error.reason).toBe("Connect")
        expect(error.retriable).toBe(true)
        expect(error.message).toBe(
          `Cannot connect the consumer to Kafka at 127.0.0.1:1: ${(error.cause as Error).message} (after 3 attempts)`
        )
      }),
    60_000
  )

  it.live(
    "a broker restarted while consuming (same data directory): consumption resumes from the committed offsets",
    () =>
      Effect.gen(function*() {
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "deimos-restart-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dataDir, { recursive: true, force: true })))
        const topic = unique("restart")
        const groupId = unique("g")
        // the first broker picks a free port; the restarted one takes the same port and data
        const first = yield* Scope.make()
        const broker = yield* KafkaBroker.make({ port: 0, dataDir, partitions: 2 }).pipe(Scope.extend(first))
        const Live = KafkaJs.layer({ brokers: [broker.broker], logLevel: "nothing", shutdownTimeout: "10 seconds" })
          .pipe(Layer.merge(MockBackend.layerMockValidating), Layer.merge(DeimosConfig.layer()))
        yield* Effect.gen(function*() {
          const seen = yield* Ref.make<ReadonlyArray<string>>([])
          const consumer = Consumer.make({
            topic,
            groupId,
            schema: Event,
            keyConfig: { field: "id" },
            ...fast,
            // a commit after every message: the first one the restarted broker refuses ends the batch there
            commitEveryMessage: true,
            handle: (payload) => Ref.update(seen, (s) => [...s, payload.id])
          })
          const seenAtLeast = (n: number) => waitUntil(Effect.map(Ref.get(seen), (s) => s.length >= n))
          const worker = yield* Effect.fork(Background.launch(Consumers.layer([consumer])))
          yield* publish(topic, 0, 10)
          yield* seenAtLeast(10)
          yield* waitUntil(Effect.map(committed(groupId, topic), (n) => n === 10))

          yield* Scope.close(first, Exit.void)
          const second = yield* Scope.make()
          yield* Effect.addFinalizer(() => Scope.close(second, Exit.void))
          yield* KafkaBroker.make({ port: broker.port, dataDir, partitions: 2 }).pipe(Scope.extend(second))

          yield* publish(topic, 10, 10)
          yield* seenAtLeast(20)
          yield* waitUntil(Effect.map(committed(groupId, topic), (n) => n === 20))
          yield* Fiber.interrupt(worker)
          const ids = yield* Ref.get(seen)
          // nothing skipped
          expect(new Set(ids)).toEqual(new Set(Array.from({ length: 20 }, (_, i) => `e${i}`)))
          // what was committed before the restart is not handled again; after it, the restarted broker no longer
          // knows the member, so the commit of at most the first message per partition is refused and that
          // message comes again after the rejoin (at least once)
          expect(ids.filter((id) => Number(id.slice(1)) < 10)).toHaveLength(10)
          expect(ids.length).toBeLessThanOrEqual(22)
        }).pipe(Effect.provide(Live))
      }).pipe(Effect.scoped),
    90_000
  )

  it.live(
    "maxConcurrency runs that many members of the group; every message is handled once",
    () =>
      Effect.gen(function*() {
        const topic = unique("members")
        const groupId = unique("g")
        const seen = yield* Ref.make<ReadonlyArray<string>>([])
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          maxConcurrency: 2,
          handle: (payload) => Ref.update(seen, (s) => [...s, payload.id])
        })
        const worker = yield* Effect.fork(Consumers.run([consumer]))
        yield* stableWith(groupId, 2)
        yield* publish(topic, 0, 30)
        yield* waitUntil(Effect.map(committed(groupId, topic), (n) => n === 30))
        yield* Fiber.interrupt(worker)
        const ids = yield* Ref.get(seen)
        expect(ids).toHaveLength(30)
        expect(new Set(ids).size).toBe(30)
      }).pipe(Effect.provide(withCluster())),
    60_000
  )
})
