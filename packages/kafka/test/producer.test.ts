import { DevCluster } from "@deimos/broker"
import { Instrumentation, Metrics, Producer, SchemaRef } from "@deimos/core"
import { InlineConsumer, KafkaProducerBackend } from "@deimos/kafka"
import { describe, expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Kafka, logLevel } from "kafkajs"
import { createRequire } from "node:module"
import { Event, KafkaTest, unique } from "./fixtures.js"

// kafkajs's murmur2 (a port of the Java client's): where a Java producer puts a key
const kafkajsMurmur2 = createRequire(import.meta.url)("kafkajs/src/producer/partitioners/default/murmur2") as (
  key: Buffer
) => number

const published = (topic: string) =>
  Effect.map(
    Metric.value(Metric.tagged(Metric.tagged(Metrics.publish, "status", "success"), "topic", topic)),
    (s) => s.count
  )
const publishErrors = (topic: string) =>
  Effect.map(Metric.value(Metric.tagged(Metrics.publishError, "topic", topic)), (s) => s.count)

const Blob = SchemaRef.fromSchema(Schema.Struct({ id: Schema.String, body: Schema.String }), {
  name: "Blob",
  namespace: "test"
})
/** Bigger than the broker's 1 MiB batch limit: the broker answers MESSAGE_TOO_LARGE. */
const tooLarge = { id: "big", body: "x".repeat(1_200_000) }
const blobs = (topic: string) => Producer.make({ topic, schema: Blob, keyConfig: { none: true } })

const firstProduceError = (events: Stream.Stream<Instrumentation.Event>) =>
  events.pipe(
    Stream.filter((e): e is Extract<Instrumentation.Event, { _tag: "ProduceError" }> => e._tag === "ProduceError"),
    Stream.runHead,
    Effect.map((o) => o._tag === "Some" ? o.value : undefined)
  )

/** What a ProduceError event says, without the 1 MB payload (a failed assertion would print it). */
const summary = (event: Extract<Instrumentation.Event, { _tag: "ProduceError" }> | undefined) =>
  event === undefined ? undefined : {
    topic: event.topic,
    backend: event.backend,
    payloads: event.payloads.map((p) => {
      const { body, id } = p as { readonly id: string; readonly body: string }
      return { id, bodyLength: body.length }
    })
  }

/**
 * The producer id and first sequence of each record batch of a topic, as a plain kafkajs consumer decodes them
 * (`batchContext` is kafkajs's view of the record batch header), until `count` messages were seen.
 */
const recordBatches = (brokers: ReadonlyArray<string>, topic: string, count: number) =>
  Effect.promise(async () => {
    const consumer = new Kafka({ brokers: [...brokers], logLevel: logLevel.NOTHING }).consumer({
      groupId: `${topic}-inspect`,
      maxWaitTimeInMs: 100
    })
    const out = new Map<string, { readonly producerId: string; readonly firstSequence: number }>()
    let seen = 0
    await consumer.connect()
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true })
      await new Promise<void>((resolve) => {
        void consumer.run({
          eachMessage: async ({ message, partition }) => {
            const context = (message as unknown as {
              readonly batchContext: {
                readonly firstOffset: string
                readonly producerId: string
                readonly firstSequence: number
              }
            }).batchContext
            out.set(`${partition}/${context.firstOffset}`, {
              producerId: context.producerId,
              firstSequence: context.firstSequence
            })
            if (++seen === count) resolve()
          }
        })
      })
    } finally {
      await consumer.disconnect()
    }
    return [...out.entries()].sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true })).map(([, v]) => v)
  })

describe("Kafka producer backends", () => {
  layer(KafkaTest, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.scoped("kafka: counts publish{status:success}; a refused send counts publish_error and emits the payloads", () =>
      Effect.gen(function*() {
        const topic = unique("produce")
        const events = yield* Effect.flatMap(Instrumentation.Events, (e) => e.subscribe)
        const producer = Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
        yield* producer.publishList([{ id: "a", n: 1 }, { id: "b", n: 2 }, { id: "c", n: 3 }])
        expect(yield* published(topic)).toBe(3)
        const error = yield* Effect.flip(blobs(topic).publish(tooLarge))
        expect(error._tag).toBe("ProducerError")
        if (error._tag !== "ProducerError") return expect.fail(`expected a ProducerError, got ${error._tag}`)
        expect({ reason: error.reason, topic: error.topic, retriable: error.retriable, failedCount: error.failedCount })
          .toEqual({ reason: "Send", topic, retriable: false, failedCount: 1 })
        expect(error.message.slice(0, 200)).toContain(topic)
        expect(yield* publishErrors(topic)).toBe(1)
        expect(yield* published(topic)).toBe(3)
        const event = yield* firstProduceError(events)
        expect(summary(event)).toEqual({ topic, backend: "kafka", payloads: [{ id: "big", bodyLength: 1_200_000 }] })
        const read = yield* InlineConsumer.read({ topic, schema: Event, keyConfig: { field: "id" } })
        expect(read.map((m) => m.payload?.n).sort()).toEqual([1, 2, 3])
      }).pipe(
        Effect.provide(KafkaProducerBackend.layer()),
        Effect.provide(Instrumentation.layerPubSub())
      ))

    it.scoped("kafka: the same partition key lands in the same partition, whatever the message key", () =>
      Effect.gen(function*() {
        const topic = unique("partition-key")
        yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } }).publishList(
          Array.from({ length: 12 }, (_, n) => Producer.envelope({ id: `k${n}`, n }, { partitionKey: "tenant-1" }))
        )
        // without a partition key, the key decides: 12 distinct keys over 3 partitions
        yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } }).publishList(
          Array.from({ length: 12 }, (_, n) => ({ id: `k${n}`, n: 100 + n }))
        )
        const read = yield* InlineConsumer.read({ topic, schema: Event, keyConfig: { field: "id" } })
        const pinned = read.filter((m) => m.payload!.n < 100)
        expect(pinned).toHaveLength(12)
        expect(new Set(pinned.map((m) => m.partition)).size).toBe(1)
        // in order within the partition
        expect(pinned.map((m) => m.payload!.n)).toEqual(Array.from({ length: 12 }, (_, n) => n))
        const byKey = read.filter((m) => m.payload!.n >= 100)
        expect(new Set(byKey.map((m) => m.partition)).size).toBeGreaterThan(1)
        // the partition a Java producer (and kafkajs's default partitioner) picks: murmur2 of the partition key
        const javaPartition = (key: string) => (kafkajsMurmur2(Buffer.from(key)) & 0x7fffffff) % 3
        expect(pinned[0].partition).toBe(javaPartition("tenant-1"))
        expect(byKey.map((m) => [m.key, m.partition])).toEqual(byKey.map((m) => [m.key, javaPartition(String(m.key))]))
      }).pipe(Effect.provide(KafkaProducerBackend.layer())))

    it.scoped("kafka: an idempotent producer writes with a producer id and sequence numbers, every message once, in order", () =>
      Effect.gen(function*() {
        const send = (topic: string, idempotent: boolean) =>
          Effect.forEach(
            [0, 25],
            (from) =>
              Producer.make({ topic, schema: Event, keyConfig: { field: "id" } }).publishList(
                Array.from(
                  { length: 25 },
                  (_, i) => Producer.envelope({ id: `i${from + i}`, n: from + i }, { partitionKey: "p" })
                )
              ),
            { discard: true }
          ).pipe(Effect.provide(KafkaProducerBackend.layer({ idempotent })))
        const idempotent = unique("idempotent")
        const plain = unique("not-idempotent")
        yield* send(idempotent, true)
        yield* send(plain, false)
        const read = yield* InlineConsumer.read({ topic: idempotent, schema: Event, keyConfig: { field: "id" } })
        expect(read.map((m) => m.payload!.n)).toEqual(Array.from({ length: 50 }, (_, n) => n))
        const cluster = yield* DevCluster.DevCluster
        // what only an idempotent producer does: its record batches carry the producer id the broker gave it and
        // the sequence number of their first record (a plain producer writes no id, and kafkajs leaves sequence 0)
        const batches = yield* recordBatches(cluster.brokers, idempotent, 50)
        expect(batches.map((b) => b.firstSequence)).toEqual([0, 25])
        expect(new Set(batches.map((b) => b.producerId)).size).toBe(1)
        expect(BigInt(batches[0].producerId)).toBeGreaterThanOrEqual(0n)
        expect(yield* recordBatches(cluster.brokers, plain, 50)).toEqual([
          { producerId: "-1", firstSequence: 0 },
          { producerId: "-1", firstSequence: 0 }
        ])
      }))

    it.scoped("kafkaAsync: sync: true sends at once; buffered messages are all flushed when the scope closes", () =>
      Effect.gen(function*() {
        const topic = unique("async")
        const producer = Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
        yield* Effect.scoped(
          Effect.gen(function*() {
            // a linger far longer than the test: only a flush on close (or sync) sends these
            yield* producer.publishList(Array.from({ length: 50 }, (_, n) => ({ id: `a${n}`, n })))
            yield* producer.publish({ id: "now", n: 1000 }, { sync: true })
            const sent = yield* InlineConsumer.read({ topic, schema: Event, keyConfig: { field: "id" } })
            expect(sent.map((m) => m.key)).toContain("now")
          }).pipe(
            Effect.provide(KafkaProducerBackend.layerAsync({ maxLinger: "1 minute", maxBatchSize: 1000 }))
          )
        )
        const all = yield* InlineConsumer.read({ topic, schema: Event, keyConfig: { field: "id" } })
        expect(all).toHaveLength(51)
        expect(new Set(all.map((m) => m.key)).size).toBe(51)
        expect(yield* published(topic)).toBe(51)
      }))

    it.scoped("kafkaAsync: a buffered batch the broker refuses is counted and emitted with its payloads", () =>
      Effect.gen(function*() {
        const topic = unique("async-error")
        const events = yield* Effect.flatMap(Instrumentation.Events, (e) => e.subscribe)
        yield* blobs(topic)
          .publish(tooLarge)
          .pipe(Effect.provide(KafkaProducerBackend.layerAsync({ maxLinger: "10 millis" })), Effect.scoped)
        expect(yield* publishErrors(topic)).toBe(1)
        const event = yield* firstProduceError(events)
        expect(summary(event)).toEqual({
          topic,
          backend: "kafkaAsync",
          payloads: [{ id: "big", bodyLength: 1_200_000 }]
        })
      }).pipe(Effect.provide(Instrumentation.layerPubSub())))
  })
})
