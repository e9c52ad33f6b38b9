import { Consumer, DeadLetter as DeadLetters, Producer } from "@deimos/core"
import { Consumers, DeadLetter, InlineConsumer, KafkaDriver, KafkaProducerBackend } from "@deimos/kafka"
import { describe, expect, layer } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { Event, fast, KafkaTest, unique } from "./fixtures.js"

class Poison extends Data.TaggedError("Poison")<{ readonly n: number }> {}

const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("50 millis") })

const messageCount = (topic: string) =>
  Effect.scoped(Effect.gen(function*() {
    const admin = yield* (yield* KafkaDriver.KafkaDriver).admin
    const offsets = yield* admin.topicOffsets(topic).pipe(Effect.orElseSucceed(() => []))
    return offsets.reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0)
  }))

describe("dead letters over Kafka", () => {
  layer(KafkaTest, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("poison messages go to <topic>.dlq and the partition moves on; replay sends them back, once", () =>
      Effect.gen(function*() {
        const topic = unique("dlq")
        const groupId = unique("g")
        yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
          .publishList(Array.from({ length: 10 }, (_, n) => ({ id: `e${n}`, n })), { headers: { origin: "test" } })
          .pipe(Effect.provide(KafkaProducerBackend.layer()))
        // the handler refuses n = 3 and n = 7 until it is fixed
        const fixed = yield* Ref.make(false)
        const handled = yield* Ref.make<ReadonlyArray<number>>([])
        const consumer = Consumer.make({
          topic,
          groupId,
          schema: Event,
          keyConfig: { field: "id" },
          ...fast,
          handle: (event) =>
            Effect.flatMap(Ref.get(fixed), (ok) =>
              !ok && (event.n === 3 || event.n === 7)
                ? Effect.fail(new Poison({ n: event.n }))
                : Ref.update(handled, (h) => [...h, event.n])),
          errorPolicy: { deadLetterOn: ["Poison"] }
        })
        const worker = yield* Effect.fork(Consumers.run([consumer]))
        yield* waitUntil(Effect.map(Ref.get(handled), (h) => h.length === 8))
        yield* waitUntil(Effect.map(messageCount(`${topic}.dlq`), (n) => n === 2))

        const letters = yield* InlineConsumer.read({ topic: `${topic}.dlq`, schema: Event, keyConfig: { field: "id" } })
        expect(letters.map((l) => l.payload?.n).sort()).toEqual([3, 7])
        for (const letter of letters) {
          expect(letter.key).toBe(`e${letter.payload?.n}`)
          expect(letter.headers).toMatchObject({
            origin: "test",
            [DeadLetters.headers.errorTag]: "Poison",
            [DeadLetters.headers.consumer]: `${groupId}:${topic}`,
            [DeadLetters.headers.sourceTopic]: topic,
            [DeadLetters.headers.attempts]: "1"
          })
        }

        // fixed: the replay sends them back to the topic, where the running consumer handles them
        yield* Ref.set(fixed, true)
        const result = yield* DeadLetter.replay({ topic: `${topic}.dlq` })
        expect(result).toEqual({ replayed: 2, skipped: 0 })
        yield* waitUntil(Effect.map(Ref.get(handled), (h) => h.length === 10))
        expect([...(yield* Ref.get(handled))].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        // a second replay has nothing left to send
        expect(yield* DeadLetter.replay({ topic: `${topic}.dlq` })).toEqual({ replayed: 0, skipped: 0 })
        yield* Fiber.interrupt(worker)
        // the replayed copies on the source topic carry the message's own headers, not the dead-letter ones
        const back = yield* InlineConsumer.read({ topic, schema: Event, keyConfig: { field: "id" }, fromOffset: 0 })
        expect(back).toHaveLength(12)
        expect(back.every((m) => m.headers.origin === "test" && m.headers[DeadLetters.headers.errorTag] === undefined))
          .toBe(true)
      }))
  })
})
