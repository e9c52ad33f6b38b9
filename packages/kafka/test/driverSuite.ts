/**
 * The conformance suite of the `KafkaDriver` port: what the runtime relies on from any adapter, against a real
 * broker. An adapter runs `driverSuite(name, layer)` with its own layer over the dev broker.
 */
import type { DevCluster } from "@deimos/broker"
import { KafkaDriver } from "@deimos/kafka"
import { describe, expect, layer } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import { unique } from "./fixtures.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (s: string) => encoder.encode(s)
const text = (b: Uint8Array | null) => b === null ? null : decoder.decode(b)

export const driverSuite = <E>(
  name: string,
  driverLayer: Layer.Layer<KafkaDriver.KafkaDriver | DevCluster.DevCluster, E>
) =>
  describe(`KafkaDriver conformance: ${name}`, () => {
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
          expect(text(all[0].headers.h as Uint8Array)).toBe("1")
          const tail = yield* admin.read(topic, [{ partition: used.partition, from: "2", until: "3" }])
          expect(tail.map((m) => m.offset)).toEqual(["2"])
        }))

      it.scoped("a group member gets batches, commits the next offset to read, and a new member resumes there", () =>
        Effect.gen(function*() {
          const driver = yield* KafkaDriver.KafkaDriver
          const topic = unique("driver-group")
          const groupId = unique("g")
          const producer = yield* driver.producer()
          yield* producer.send(
            topic,
            Array.from({ length: 5 }, (_, i) => ({ key: null, value: bytes(`m${i}`), partitionKey: "p", headers: {} }))
          )
          const consumeUntil = (count: number, commitAfter: number) =>
            Effect.scoped(Effect.gen(function*() {
              const seen = yield* Ref.make<ReadonlyArray<string>>([])
              const done = yield* Deferred.make<void>()
              const member = yield* driver.consumer({ groupId, topics: [topic], maxWaitTime: "100 millis" })
              const fiber = yield* Effect.fork(member.run((batch, control) =>
                Effect.gen(function*() {
                  for (const m of batch.messages) {
                    const all = yield* Ref.updateAndGet(seen, (s) => [...s, text(m.value)!])
                    if (all.length <= commitAfter) yield* control.resolveOffset(m.offset)
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
          const committed = yield* admin.committedOffsets(groupId, topic)
          expect(committed.map((c) => c.offset).filter((o) => o !== "-1")).toEqual(["3"])
          expect(yield* consumeUntil(2, 2)).toEqual(["m3", "m4"])
        }))

      it.scoped("a failing batch handler fails run with its error", () =>
        Effect.gen(function*() {
          const driver = yield* KafkaDriver.KafkaDriver
          const topic = unique("driver-fail")
          const producer = yield* driver.producer()
          yield* producer.send(topic, [{ key: null, value: bytes("x"), partitionKey: null, headers: {} }])
          const member = yield* driver.consumer({ groupId: unique("g"), topics: [topic], maxWaitTime: "100 millis" })
          const error = yield* Effect.flip(member.run(() => Effect.fail("boom" as const)))
          expect(error).toBe("boom")
        }))
    })
  })
