// The record consumer on the Kafka path: Avro messages produced to the dev broker over TCP, consumed by a group
// member (kafkajs) in batch mode into a Postgres table, tombstones included.
import { AvroBackend } from "@deimos/avro"
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { DeimosConfig, Producer, Tombstone } from "@deimos/core"
import { Consumers, KafkaProducerBackend } from "@deimos/kafka"
import { Database, RecordConsumer } from "@deimos/sql"
import { describe, expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { driverAt } from "./outboxFixtures.js"
import { DatabaseIn, schemaFor, tablesIn, waitUntil, Widget } from "./recordFixtures.js"

const schema = schemaFor("record_kafka")
const { widgets } = tablesIn(schema)

const Kafka = Layer.unwrapScoped(
  Effect.map(KafkaBroker.make({ port: 0, partitions: 3 }), (broker) => driverAt(broker.port))
)

describe("RecordConsumer over Kafka", () => {
  layer(
    Layer.mergeAll(DatabaseIn(schema), Kafka, AvroBackend.layerLocal(), DeimosConfig.layer()),
    { timeout: 90_000, excludeTestServices: true }
  )((it) => {
    it.effect("Avro messages from the broker end up as rows: last per key, tombstones deleted, timestamps as dates", () =>
      Effect.gen(function*() {
        const topic = `widgets-${Math.random().toString(36).slice(2, 8)}`
        const producer = Producer.make({ topic, schema: Widget, keyConfig: { field: "id" } })
        const soldAt = Date.UTC(2025, 5, 6, 7, 8, 9, 10)
        // 50 keys, 4 versions each (price = version), then tombstones for the keys divisible by 10
        const payloads = Array.from({ length: 200 }, (_, i) => ({
          id: `k${i % 50}`,
          name: `name ${i}`,
          price: Math.floor(i / 50),
          sold_at: soldAt + (i % 50)
        }))
        yield* producer.publishList(payloads).pipe(Effect.provide(KafkaProducerBackend.layer()))
        yield* producer.publishList(Array.from({ length: 5 }, (_, i) => Tombstone.make(`k${i * 10}`))).pipe(
          Effect.provide(KafkaProducerBackend.layer())
        )
        const consumer = RecordConsumer.make({
          topic,
          groupId: `g-${topic}`,
          schema: Widget,
          keyConfig: { field: "id" },
          table: widgets,
          delivery: "inlineBatch",
          maxWaitTime: "100 millis"
        })
        const fiber = yield* Effect.fork(Consumers.run([consumer]))
        const rows = () => Database.use((db) => db.select().from(widgets))
        yield* waitUntil(Effect.map(rows(), (all) => all.length === 45 && all.every((r) => r.price === 3)))
        yield* Fiber.interrupt(fiber)
        const all = yield* rows()
        expect(all.map((r) => r.id).sort()).toEqual(
          Array.from({ length: 50 }, (_, i) => `k${i}`).filter((_, i) => i % 10 !== 0).sort()
        )
        for (const row of all) {
          const i = Number(row.id.slice(1))
          expect(row).toMatchObject({ name: `name ${150 + i}`, price: 3 })
          expect(row.soldAt!.getTime()).toBe(soldAt + i)
        }
      }))
  })
})
