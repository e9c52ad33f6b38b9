import { DevCluster } from "@deimos/broker"
import { Producer } from "@deimos/core"
import { InlineConsumer, KafkaDriver, KafkaProducerBackend } from "@deimos/kafka"
import { describe, expect, layer } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import { appendCommitMarker } from "./controlRecord.js"
import { Event, KafkaTest, unique } from "./fixtures.js"

class Stop extends Data.TaggedError("Stop")<{ readonly n: number }> {}

const producer = (topic: string) => Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })

/** Ten events at offsets 0..9 of one partition (the others stay empty); returns that partition. */
const seed = (topic: string) =>
  Effect.gen(function*() {
    yield* producer(topic).publishList(
      Array.from({ length: 10 }, (_, n) => Producer.envelope({ id: `p${n}`, n }, { partitionKey: "pinned" }))
    )
    const offsets = yield* Effect.scoped(
      Effect.flatMap(KafkaDriver.KafkaDriver, (driver) =>
        Effect.flatMap(driver.admin, (admin) => admin.topicOffsets(topic)))
    )
    return offsets.find((o) =>
      o.high === "10"
    )!.partition
  }).pipe(Effect.provide(KafkaProducerBackend.layer()))

const options = (topic: string) => ({ topic, schema: Event, keyConfig: { field: "id" } }) as const

describe("InlineConsumer", () => {
  layer(KafkaTest, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("fromOffset and partitions: only those partitions, from that offset on, in offset order", () =>
      Effect.gen(function*() {
        const topic = unique("inline-from")
        const pinned = yield* seed(topic)
        const from7 = yield* InlineConsumer.read({ ...options(topic), fromOffset: 7, partitions: [pinned] })
        expect(from7.map((m) => [m.partition, m.offset, m.payload?.n])).toEqual([
          [pinned, "7", 7],
          [pinned, "8", 8],
          [pinned, "9", 9]
        ])
        // fromOffset wins over last; an offset beyond the end reads nothing
        const beyond = yield* InlineConsumer.read({ ...options(topic), fromOffset: 50, last: 3, partitions: [pinned] })
        expect(beyond).toEqual([])
        const last2 = yield* InlineConsumer.read({ ...options(topic), last: 2, partitions: [pinned] })
        expect(last2.map((m) => m.offset)).toEqual(["8", "9"])
        const others = yield* InlineConsumer.read({
          ...options(topic),
          partitions: [0, 1, 2].filter((p) => p !== pinned)
        })
        expect(others).toEqual([])
        const all = yield* InlineConsumer.read({ ...options(topic), partitions: [0, 1, 2] })
        expect(all).toHaveLength(10)
      }))

    it.effect("read returns partitions in order, offsets in order within each", () =>
      Effect.gen(function*() {
        const topic = unique("inline-order")
        yield* producer(topic).publishList(Array.from({ length: 24 }, (_, n) => ({ id: `k${n}`, n }))).pipe(
          Effect.provide(KafkaProducerBackend.layer())
        )
        const all = yield* InlineConsumer.read(options(topic))
        expect(all).toHaveLength(24)
        const positions = all.map((m) => [m.partition, Number(m.offset)])
        expect(new Set(positions.map(([p]) => p)).size).toBeGreaterThan(1)
        expect(positions).toEqual([...positions].sort((a, b) => a[0] - b[0] || a[1] - b[1]))
      }))

    it.effect("run hands each decoded message to the handler in order; a failing handler stops the run", () =>
      Effect.gen(function*() {
        const topic = unique("inline-run")
        const pinned = yield* seed(topic)
        const seen = yield* Ref.make<ReadonlyArray<number>>([])
        yield* InlineConsumer.run(
          { ...options(topic), partitions: [pinned] },
          (m) => Ref.update(seen, (s) => [...s, m.payload!.n])
        )
        expect(yield* Ref.get(seen)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        const handled = yield* Ref.make<ReadonlyArray<number>>([])
        const error = yield* Effect.flip(InlineConsumer.run(
          { ...options(topic), partitions: [pinned] },
          (m) =>
            Effect.zipRight(
              Ref.update(handled, (h) => [...h, m.payload!.n]),
              m.payload!.n === 3 ? Effect.fail(new Stop({ n: 3 })) : Effect.void
            )
        ))
        expect(error).toEqual(new Stop({ n: 3 }))
        expect(yield* Ref.get(handled)).toEqual([0, 1, 2, 3])
      }))

    it.effect("a partition ending in a transaction marker (never delivered) is read to its end", () =>
      Effect.gen(function*() {
        const topic = unique("inline-marker")
        const pinned = yield* seed(topic)
        const cluster = yield* DevCluster.DevCluster
        yield* appendCommitMarker(cluster.brokers[0], topic, pinned)
        const offsets = yield* Effect.scoped(
          Effect.flatMap(
            KafkaDriver.KafkaDriver,
            (driver) => Effect.flatMap(driver.admin, (admin) => admin.topicOffsets(topic))
          )
        )
        // the marker takes offset 10: the high watermark is 11, offset 10 is never delivered
        expect(offsets.find((o) => o.partition === pinned)!.high).toBe("11")
        const read = yield* InlineConsumer.read({ ...options(topic), partitions: [pinned], timeout: "10 seconds" })
        expect(read.map((m) => m.payload?.n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        const last = yield* InlineConsumer.read({
          ...options(topic),
          partitions: [pinned],
          last: 1,
          timeout: "10 seconds"
        })
        expect(last).toEqual([])
      }))

    it.effect("a read that does not finish within its timeout fails with a retriable KafkaError", () =>
      Effect.gen(function*() {
        const topic = unique("inline-timeout")
        yield* seed(topic)
        const error = yield* Effect.flip(InlineConsumer.read({ ...options(topic), timeout: "1 millis" }))
        expect(error._tag).toBe("KafkaError")
        if (error._tag !== "KafkaError") return
        expect(error.reason).toBe("Consume")
        expect(error.retriable).toBe(true)
        expect(error.message).toContain(`Reading ${topic}`)
        expect(error.message).toContain("did not finish within 1ms")
      }))
  })
})
