import { KafkaDriver } from "@deimos/kafka"
import { describe, expect, layer } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { fast, KafkaTest, publishInOnePartition, unique } from "./fixtures.js"

const adminOf = Effect.flatMap(KafkaDriver.KafkaDriver, (driver) => driver.admin)

describe("Admin.setOffsets", () => {
  layer(KafkaTest, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.scoped("sets the offsets of a group without members; a consumer of the group then starts there", () =>
      Effect.gen(function*() {
        const topic = unique("set-offsets")
        const groupId = unique("set-offsets-group")
        yield* publishInOnePartition(topic, 10)
        const admin = yield* adminOf
        const partition = (yield* admin.topicOffsets(topic)).find((o) => o.high === "10")!.partition
        yield* admin.setOffsets(groupId, topic, [{ partition, offset: "7" }])
        const committed = yield* admin.committedOffsets(groupId, topic)
        expect(committed.find((c) => c.partition === partition)?.offset).toBe("7")
        // moved back: the committed offset may go down as well as up
        yield* admin.setOffsets(groupId, topic, [{ partition, offset: "2" }])
        expect((yield* admin.committedOffsets(groupId, topic)).find((c) => c.partition === partition)?.offset)
          .toBe("2")
        const driver = yield* KafkaDriver.KafkaDriver
        const consumer = yield* driver.consumer({ groupId, topics: [topic], ...fast })
        const first = yield* Deferred.make<string>()
        const fiber = yield* Effect.fork(consumer.run((batch) => Deferred.succeed(first, batch.messages[0].offset)))
        expect(yield* Deferred.await(first)).toBe("2")
        yield* Fiber.interrupt(fiber)
      }))

    it.scoped("refuses while the group has a running member, saying so", () =>
      Effect.gen(function*() {
        const topic = unique("set-offsets-busy")
        const groupId = unique("set-offsets-busy-group")
        yield* publishInOnePartition(topic, 3)
        const driver = yield* KafkaDriver.KafkaDriver
        const consumer = yield* driver.consumer({ groupId, topics: [topic], ...fast })
        const seen = yield* Deferred.make<void>()
        yield* Effect.forkScoped(consumer.run(() => Deferred.succeed(seen, undefined)))
        yield* Deferred.await(seen)
        const admin = yield* adminOf
        const error = yield* Effect.flip(admin.setOffsets(groupId, topic, [{ partition: 0, offset: "0" }]))
        expect(error._tag).toBe("KafkaError")
        expect(error.message).toContain(`Cannot set the offsets of ${groupId}`)
      }))
  })
})
