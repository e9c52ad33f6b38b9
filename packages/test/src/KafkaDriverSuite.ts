/**
 * The conformance suite of `@deimos/kafka`'s `KafkaDriver` port: what the runtime relies on from any adapter
 * (produce, admin offsets and reads, group commits, back-pressure, pause, heartbeats, the graceful stop and its grace
 * period, connection errors), against the dev broker (`@deimos/broker`) over TCP. An adapter's test file calls
 * `KafkaDriverSuite.suite(name, { driver })`; this module needs `@deimos/kafka` and `@deimos/broker` (optional
 * peers of this package, installed by whoever writes an adapter).
 *
 * @since 0.1.0
 */
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { KafkaDriver } from "@deimos/kafka"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"

/**
 * What the suite configures an adapter with.
 *
 * @since 0.1.0
 */
export interface DriverOptions {
  /** `host:port` of the brokers. */
  readonly brokers: ReadonlyArray<string>
  /** How long a stopping member gives the batch in hand (and a disconnect) before interrupting it. */
  readonly shutdownTimeout: Duration.DurationInput
  /** Connection attempts before the adapter gives up with a `KafkaError` of reason `"Connect"`. */
  readonly connectAttempts: number
  readonly connectionTimeout: Duration.DurationInput
}

/**
 * @since 0.1.0
 */
export interface Options<E> {
  /** The adapter under test, configured with the suite's options (and its own logging turned down). */
  readonly driver: (options: DriverOptions) => Layer.Layer<KafkaDriver.KafkaDriver, E>
}

/** The grace period of the suite's driver: long enough to finish a short batch, short enough to wait out. */
const shutdownTimeout = Duration.seconds(2)

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (s: string) => encoder.encode(s)
const text = (b: Uint8Array | null) => b === null ? null : decoder.decode(b)
const unique = (base: string) => `${base}-${globalThis.crypto.randomUUID().slice(0, 8)}`

const message = (value: string, partitionKey: string | null = null): KafkaDriver.OutgoingMessage => ({
  key: null,
  value: bytes(value),
  partitionKey,
  headers: {}
})

/** Polls until `check` is true (the test has its own timeout). */
const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("50 millis") })

const elapsedMillis = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const result = yield* self
    return [result, (yield* Clock.currentTimeMillis) - start] as const
  })

/**
 * Registers the suite's tests under `describe("KafkaDriver conformance: <name>")`. It starts its own broker (3
 * partitions per auto-created topic) on a free port.
 *
 * @since 0.1.0
 */
export const suite = <E>(name: string, options: Options<E>): void => {
  describe(`KafkaDriver conformance: ${name}`, () => {
    const driverLayer = Layer.unwrapEffect(
      Effect.map(KafkaBroker.KafkaBroker, (broker) =>
        options.driver({
          brokers: [broker.broker],
          shutdownTimeout,
          connectAttempts: 3,
          connectionTimeout: "1 second"
        }))
    ).pipe(Layer.provideMerge(KafkaBroker.layer({ port: 0, partitions: 3 })))

    const send = (topic: string, messages: ReadonlyArray<KafkaDriver.OutgoingMessage>) =>
      Effect.scoped(
        Effect.flatMap(KafkaDriver.KafkaDriver, (driver) =>
          Effect.flatMap(driver.producer(), (producer) => producer.send(topic, messages)))
      )

    const committed = (groupId: string, topic: string) =>
      Effect.scoped(
        Effect.flatMap(KafkaDriver.KafkaDriver, (driver) =>
          Effect.flatMap(driver.admin, (admin) => admin.committedOffsets(groupId, topic)))
      )

    const member = (groupId: string, topic: string, extra: Partial<KafkaDriver.ConsumerOptions> = {}) =>
      Effect.flatMap(
        KafkaDriver.KafkaDriver,
        (driver) => driver.consumer({ groupId, topics: [topic], maxWaitTime: "100 millis", ...extra })
      )

    layer(driverLayer, { timeout: 60_000, excludeTestServices: true })((it) => {
      it.scoped("produce → admin offsets → read: keys, values, tombstones, headers, in partition order", () =>
        Effect.gen(function*() {
          const driver = yield* KafkaDriver.KafkaDriver
          const topic = unique("driver-read")
          const admin = yield* driver.admin
          expect(yield* admin.createTopic(topic, { partitions: 2 })).toBe(true)
          const producer = yield* driver.producer()
          yield* producer.send(topic, [
            { key: bytes("k1"), value: bytes("v1"), partitionKey: "p", headers: { h: "1" } },
            { key: bytes("k2"), value: null, partitionKey: "p", headers: {} },
            { key: null, value: bytes("v3"), partitionKey: "p", headers: {} }
          ])
          const offsets = yield* admin.topicOffsets(topic)
          expect(offsets.map((o) => o.partition).sort()).toEqual([0, 1])
          const used = offsets.find((o) => o.high === "3")!
          expect(used.low).toBe("0")
          const all = yield* admin.read(topic, [{ partition: used.partition, from: "0", until: "3" }])
          expect(all.map((m) => [m.offset, text(m.key), text(m.value)])).toEqual([
            ["0", "k1", "v1"],
            ["1", "k2", null],
            ["2", null, "v3"]
          ])
          const header = all[0].headers.h
          expect(typeof header === "string" ? header : text(header ?? null)).toBe("1")
          const tail = yield* admin.read(topic, [{ partition: used.partition, from: "2", until: "3" }])
          expect(tail.map((m) => m.offset)).toEqual(["2"])
        }))

      it.scoped("read stops at the high watermark: a range beyond the end returns what is there", () =>
        Effect.gen(function*() {
          const driver = yield* KafkaDriver.KafkaDriver
          const topic = unique("driver-read-end")
          yield* send(topic, [message("a", "p"), message("b", "p")])
          const admin = yield* driver.admin
          const used = (yield* admin.topicOffsets(topic)).find((o) => o.high === "2")!
          const read = yield* admin.read(topic, [{ partition: used.partition, from: "0", until: "1000" }]).pipe(
            Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "read waited for offsets never written" })
          )
          expect(read.map((m) => text(m.value))).toEqual(["a", "b"])
        }))

      it.scoped("a group member gets batches, commits the next offset to read, and a new member resumes there", () =>
        Effect.gen(function*() {
          const driver = yield* KafkaDriver.KafkaDriver
          const topic = unique("driver-group")
          const groupId = unique("g")
          yield* send(topic, Array.from({ length: 5 }, (_, i) => message(`m${i}`, "p")))
          const consumeUntil = (count: number, commitAfter: number) =>
            Effect.scoped(Effect.gen(function*() {
              const seen = yield* Ref.make<ReadonlyArray<string>>([])
              const done = yield* Deferred.make<void>()
              const m = yield* member(groupId, topic)
              const fiber = yield* Effect.fork(m.run((batch, control) =>
                Effect.gen(function*() {
                  for (const msg of batch.messages) {
                    const all = yield* Ref.updateAndGet(seen, (s) => [...s, text(msg.value)!])
                    if (all.length <= commitAfter) yield* control.resolveOffset(msg.offset)
                    if (all.length === count) {
                      yield* control.commit
                      yield* Deferred.succeed(done, undefined)
                    }
                  }
                })
              ))
              yield* Deferred.await(done)
              yield* Fiber.interrupt(fiber)
              return yield* Ref.get(seen)
            }))
          // resolve the first three only: the next member starts at offset 3
          expect(yield* consumeUntil(5, 3)).toEqual(["m0", "m1", "m2", "m3", "m4"])
          const admin = yield* driver.admin
          const offsets = yield* admin.committedOffsets(groupId, topic)
          expect(offsets.map((c) => c.offset).filter((o) => o !== "-1")).toEqual(["3"])
          expect(yield* consumeUntil(2, 2)).toEqual(["m3", "m4"])
        }))

      it.scoped("committedOffsets: every partition of the topic, \"-1\" where the group committed nothing", () =>
        Effect.gen(function*() {
          const topic = unique("driver-committed")
          const groupId = unique("g")
          yield* send(topic, [message("x", "p"), message("y", "p")])
          const none = yield* committed(groupId, topic)
          expect(none.map((c) => [c.partition, c.offset]).sort()).toEqual([[0, "-1"], [1, "-1"], [2, "-1"]])
          const done = yield* Deferred.make<number>()
          const m = yield* member(groupId, topic)
          const fiber = yield* Effect.fork(m.run((batch, control) =>
            Effect.gen(function*() {
              yield* control.resolveOffset(batch.messages[batch.messages.length - 1].offset)
              yield* control.commit
              yield* Deferred.succeed(done, batch.partition)
            })
          ))
          const partition = yield* Deferred.await(done)
          yield* Fiber.interrupt(fiber)
          const some = yield* committed(groupId, topic)
          expect(some.map((c) => [c.partition, c.offset]).sort()).toEqual(
            [0, 1, 2].map((p) => [p, p === partition ? "2" : "-1"])
          )
        }))

      it.scoped("a failing batch handler fails run with its error", () =>
        Effect.gen(function*() {
          const topic = unique("driver-fail")
          yield* send(topic, [message("x")])
          const m = yield* member(unique("g"), topic)
          const error = yield* Effect.flip(m.run(() => Effect.fail("boom" as const)))
          expect(error).toBe("boom")
        }))

      it.scoped("back-pressure: nothing is fetched while a batch is in hand (what arrives meanwhile is one batch)", () =>
        Effect.gen(function*() {
          const topic = unique("driver-backpressure")
          yield* send(topic, [message("m0", "p")])
          const held = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const sizes = yield* Ref.make<ReadonlyArray<number>>([])
          const m = yield* member(unique("g"), topic)
          const fiber = yield* Effect.fork(m.run((batch, control) =>
            Effect.gen(function*() {
              const all = yield* Ref.updateAndGet(sizes, (s) => [...s, batch.messages.length])
              if (all.length === 1) {
                yield* Deferred.succeed(held, undefined)
                yield* Deferred.await(release)
              }
              yield* control.resolveOffset(batch.messages[batch.messages.length - 1].offset)
            })
          ))
          yield* Deferred.await(held)
          // one at a time, each long enough apart for a fetching driver to take it on its own
          for (let i = 1; i <= 20; i++) {
            yield* send(topic, [message(`m${i}`, "p")])
            yield* Effect.sleep("20 millis")
          }
          yield* Effect.sleep("300 millis")
          expect(yield* Ref.get(sizes)).toEqual([1])
          yield* Deferred.succeed(release, undefined)
          yield* waitUntil(Effect.map(Ref.get(sizes), (s) => s.reduce((a, b) => a + b, 0) >= 21))
          yield* Fiber.interrupt(fiber)
          // fetched only once the first batch was done: everything that arrived meanwhile, in one batch
          expect(yield* Ref.get(sizes)).toEqual([1, 20])
        }))

      it.scoped("pause stops deliveries from that partition; the others go on", () =>
        Effect.gen(function*() {
          const topic = unique("driver-pause")
          const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`)
          yield* send(topic, keys.map((k) => message(`${k}/1`, k)))
          const batches = yield* Ref.make<ReadonlyArray<{ readonly partition: number; readonly last: string }>>([])
          const m = yield* member(unique("g"), topic)
          const fiber = yield* Effect.fork(m.run((batch, control) =>
            Effect.gen(function*() {
              const all = yield* Ref.updateAndGet(batches, (b) => [...b, {
                partition: batch.partition,
                last: batch.messages[batch.messages.length - 1].offset
              }])
              if (all.length === 1) yield* control.pause
              for (const msg of batch.messages) yield* control.resolveOffset(msg.offset)
            })
          ))
          yield* waitUntil(Effect.map(Ref.get(batches), (b) => b.length > 0))
          const paused = (yield* Ref.get(batches))[0].partition
          // the same keys again: the same partitions get more
          yield* send(topic, keys.map((k) => message(`${k}/2`, k)))
          const driver = yield* KafkaDriver.KafkaDriver
          const admin = yield* driver.admin
          const ends = (yield* admin.topicOffsets(topic)).filter((o) => o.high !== "0")
          expect(ends.length).toBeGreaterThan(1)
          const others = ends.filter((o) => o.partition !== paused)
          // every other partition is delivered to its end
          yield* waitUntil(Effect.map(Ref.get(batches), (b) =>
            others.every((o) =>
              b.some((x) =>
                x.partition === o.partition && BigInt(x.last) === BigInt(o.high) - 1n
              )
            )))
          yield* Effect.sleep("500 millis")
          yield* Fiber.interrupt(fiber)
          expect((yield* Ref.get(batches)).filter((b) =>
            b.partition === paused
          )).toHaveLength(1)
        }))

      it.scoped(
        "heartbeat succeeds while a batch is held longer than the session timeout; the member stays",
        () =>
          Effect.gen(function*() {
            const topic = unique("driver-heartbeat")
            const groupId = unique("g")
            yield* send(topic, [message("slow", "p")])
            const calls = yield* Ref.make(0)
            const done = yield* Deferred.make<
              {
                readonly beats: ReadonlyArray<Either.Either<void, unknown>>
                readonly commit: Either.Either<void, unknown>
              }
            >()
            const m = yield* member(groupId, topic, { sessionTimeout: "1 second", heartbeatInterval: "100 millis" })
            const fiber = yield* Effect.fork(m.run((batch, control) =>
              Effect.gen(function*() {
                yield* Ref.update(calls, (n) => n + 1)
                const beats: Array<Either.Either<void, unknown>> = []
                // two and a half session timeouts: without heartbeats the member would be expired
                for (let i = 0; i < 15; i++) {
                  yield* Effect.sleep("170 millis")
                  beats.push(yield* Effect.either(control.heartbeat))
                }
                yield* control.resolveOffset(batch.messages[0].offset)
                const commit = yield* Effect.either(control.commit)
                yield* Deferred.succeed(done, { beats, commit })
              })
            ))
            const { beats, commit } = yield* Deferred.await(done)
            yield* Effect.sleep("300 millis")
            yield* Fiber.interrupt(fiber)
            expect(beats.filter(Either.isLeft)).toEqual([])
            expect(commit).toEqual(Either.right(undefined))
            expect(yield* Ref.get(calls)).toBe(1)
            expect((yield* committed(groupId, topic)).filter((c) => c.offset !== "-1").map((c) => c.offset)).toEqual([
              "1"
            ])
          }),
        30_000
      )

      it.scoped("interrupting run: isRunning turns false and stopping completes; the batch in hand may commit", () =>
        Effect.gen(function*() {
          const topic = unique("driver-stop")
          const groupId = unique("g")
          yield* send(topic, [message("a", "p"), message("b", "p"), message("c", "p")])
          const started = yield* Deferred.make<boolean>()
          const afterStop = yield* Ref.make<boolean | undefined>(undefined)
          const m = yield* member(groupId, topic)
          const fiber = yield* Effect.fork(m.run((batch, control) =>
            Effect.gen(function*() {
              yield* Deferred.succeed(started, control.isRunning())
              // the handler waits for the stop signal itself, not for the grace period to run out
              yield* control.stopping
              const after = control.isRunning()
              yield* control.resolveOffset(batch.messages[batch.messages.length - 1].offset)
              yield* control.commit
              yield* Ref.set(afterStop, after)
            })
          ))
          expect(yield* Deferred.await(started)).toBe(true)
          const exit = yield* Fiber.interrupt(fiber)
          expect(Exit.isInterrupted(exit)).toBe(true)
          expect(yield* Ref.get(afterStop)).toBe(false)
          // it finished by itself, before the grace period ran out: interrupted, it would have committed nothing
          expect((yield* committed(groupId, topic)).filter((c) => c.offset !== "-1").map((c) => c.offset)).toEqual([
            "3"
          ])
        }))

      it.scoped("the batch in hand gets the shutdown timeout to finish", () =>
        Effect.gen(function*() {
          const topic = unique("driver-grace")
          const groupId = unique("g")
          yield* send(topic, [message("a", "p")])
          const started = yield* Deferred.make<void>()
          const finished = yield* Ref.make(false)
          const m = yield* member(groupId, topic)
          const fiber = yield* Effect.fork(m.run((batch, control) =>
            Effect.gen(function*() {
              yield* Deferred.succeed(started, undefined)
              yield* Effect.sleep("500 millis")
              yield* control.resolveOffset(batch.messages[0].offset)
              yield* control.commit
              yield* Ref.set(finished, true)
            })
          ))
          yield* Deferred.await(started)
          yield* Fiber.interrupt(fiber)
          expect(yield* Ref.get(finished)).toBe(true)
          expect((yield* committed(groupId, topic)).filter((c) => c.offset !== "-1").map((c) => c.offset)).toEqual([
            "1"
          ])
        }))

      it.scoped(
        "the batch in hand is interrupted after the shutdown timeout; nothing of it is committed",
        () =>
          Effect.gen(function*() {
            const topic = unique("driver-stuck")
            const groupId = unique("g")
            yield* send(topic, [message("a", "p")])
            const started = yield* Deferred.make<void>()
            const interrupted = yield* Ref.make(false)
            const m = yield* member(groupId, topic)
            const fiber = yield* Effect.fork(m.run((batch, control) =>
              Effect.gen(function*() {
                yield* control.resolveOffset(batch.messages[0].offset)
                yield* Deferred.succeed(started, undefined)
                yield* Effect.never
              }).pipe(Effect.onInterrupt(() => Ref.set(interrupted, true)))
            ))
            yield* Deferred.await(started)
            const [exit, millis] = yield* elapsedMillis(Fiber.interrupt(fiber))
            expect(Exit.isInterrupted(exit)).toBe(true)
            expect(yield* Ref.get(interrupted)).toBe(true)
            const grace = Duration.toMillis(shutdownTimeout)
            expect(millis).toBeGreaterThanOrEqual(grace - 100)
            // interrupted after the grace period: the handler itself never ends
            expect(millis).toBeLessThan(grace + 20_000)
            expect((yield* committed(groupId, topic)).map((c) => c.offset)).toEqual(["-1", "-1", "-1"])
          }),
        30_000
      )
    })

    it.live(
      "a consumer that cannot connect fails with a retriable KafkaError of reason \"Connect\"",
      () =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(Effect.scoped(
            Effect.flatMap(
              KafkaDriver.KafkaDriver,
              (driver) => driver.consumer({ groupId: "never", topics: ["never"] })
            )
          )).pipe(Effect.provide(options.driver({
            brokers: ["127.0.0.1:1"],
            shutdownTimeout,
            connectAttempts: 2,
            connectionTimeout: "200 millis"
          })))
          expect(error._tag).toBe("KafkaError")
          expect(error.reason).toBe("Connect")
          expect(error.retriable).toBe(true)
          expect(error.message).toContain("127.0.0.1:1")
        }),
      30_000
    )
  })
}
