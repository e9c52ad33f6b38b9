/**
 * Framework overhead against raw kafkajs, in one run against the dev broker: 200k messages produced through
 * `Producer.publishList` (kafka backend, mock schema) versus raw kafkajs `producer.send` of the same bytes, then
 * consumed through a `Consumers` worker versus raw kafkajs `eachBatch` (which also parses the JSON, as the mock
 * backend does). Ends with `RESULT produce_overhead_ratio=X consume_overhead_ratio=Y` (framework time / raw time).
 *
 * Run: `npm run bench:kafka`
 */
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { Consumer, Producer, SchemaBackend, SchemaRef } from "@deimos/core"
import { Consumers, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import { Kafka, logLevel, Partitioners } from "kafkajs"

const total = Number(process.env.BENCH_MESSAGES ?? 200_000)
const batchSize = 500

interface Payload {
  readonly id: string
  readonly n: number
  readonly body: string
}
const Payload = SchemaRef.make<Payload>({ name: "Payload", namespace: "bench" })
const payloads: ReadonlyArray<Payload> = Array.from({ length: total }, (_, n) => ({
  id: `id-${n}`,
  n,
  body: "x".repeat(150)
}))

const seconds = (start: number) => (performance.now() - start) / 1000

const program = Effect.gen(function*() {
  const broker = yield* KafkaBroker.make({ port: 0, maxMessageBytes: 16 * 1024 * 1024 })
  const kafka = new Kafka({ brokers: [broker.broker], clientId: "bench-raw", logLevel: logLevel.NOTHING })
  const Live = Layer.mergeAll(
    KafkaProducerBackend.layer(),
    SchemaBackend.layerMock
  ).pipe(
    Layer.provideMerge(KafkaJs.layer({ brokers: [broker.broker], clientId: "bench-fw", logLevel: "nothing" })),
    Layer.merge(SchemaBackend.layerMock)
  )

  // the same bytes for the raw side: keys as the producer encodes plain keys, values as the mock backend does
  const encoded = yield* Effect.forEach(
    payloads,
    (p) =>
      Effect.map(SchemaBackend.mock.encode(p, { schema: Payload, topic: "raw" }), (value) => ({
        key: Buffer.from(p.id),
        value: Buffer.from(value)
      }))
  )

  // ---- produce
  const rawProduce = yield* Effect.promise(async () => {
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({
      topics: [{ topic: "raw", numPartitions: 3 }, { topic: "fw", numPartitions: 3 }, {
        topic: "idem",
        numPartitions: 3
      }]
    })
    await admin.disconnect()
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
    await producer.connect()
    const start = performance.now()
    for (let i = 0; i < total; i += batchSize) {
      await producer.send({ topic: "raw", acks: -1, messages: encoded.slice(i, i + batchSize) })
    }
    const took = seconds(start)
    await producer.disconnect()
    return took
  })

  const producer = Producer.make({ topic: "fw", schema: Payload, keyConfig: { plain: true }, maxBatchSize: batchSize })
  const fwProduce = yield* Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(Live)
    const start = performance.now()
    yield* producer.publishList(payloads.map((p) => Producer.envelope(p, { key: p.id }))).pipe(Effect.provide(context))
    return seconds(start)
  }))

  // idempotent producer: the same publishList through an idempotent kafka backend
  const idempotentProduce = yield* Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(
      KafkaProducerBackend.layer({ idempotent: true }).pipe(
        Layer.provideMerge(KafkaJs.layer({ brokers: [broker.broker], clientId: "bench-idem", logLevel: "nothing" })),
        Layer.merge(SchemaBackend.layerMock)
      )
    )
    const idempotent = Producer.make({
      topic: "idem",
      schema: Payload,
      keyConfig: { plain: true },
      maxBatchSize: batchSize
    })
    const start = performance.now()
    yield* idempotent.publishList(payloads.map((p) => Producer.envelope(p, { key: p.id }))).pipe(
      Effect.provide(context)
    )
    return seconds(start)
  }))

  // ---- consume
  const rawConsume = yield* Effect.promise(async () => {
    const consumer = kafka.consumer({ groupId: "raw-g", maxBytesPerPartition: 4 * 1024 * 1024 })
    await consumer.connect()
    await consumer.subscribe({ topic: "raw", fromBeginning: true })
    let count = 0
    const start = performance.now()
    const took = await new Promise<number>((resolve) => {
      void consumer.run({
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, commitOffsetsIfNecessary, resolveOffset }) => {
          for (const m of batch.messages) {
            JSON.parse(m.value!.toString())
            resolveOffset(m.offset)
            count++
          }
          await commitOffsetsIfNecessary()
          if (count >= total) resolve(seconds(start))
        }
      })
    })
    await consumer.disconnect()
    return took
  })

  const fwConsume = yield* Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(Live)
    const count = yield* Ref.make(0)
    const done = yield* Deferred.make<void>()
    const consumer = Consumer.make({
      topic: "fw",
      groupId: "fw-g",
      schema: Payload,
      keyConfig: { plain: true },
      delivery: "batch",
      maxBytesPerPartition: 4 * 1024 * 1024,
      handle: () =>
        Effect.flatMap(
          Ref.updateAndGet(count, (c) => c + 1),
          (c) => c >= total ? Deferred.succeed(done, undefined) : Effect.void
        )
    })
    const start = performance.now()
    const fiber = yield* Effect.fork(Consumers.run([consumer]).pipe(Effect.provide(context)))
    yield* Deferred.await(done)
    const took = seconds(start)
    yield* Fiber.interrupt(fiber)
    return took
  }))

  const produceRatio = fwProduce / rawProduce
  const consumeRatio = fwConsume / rawConsume
  console.log(
    `produce ${total}: raw kafkajs ${rawProduce.toFixed(2)} s, Producer.publishList ${fwProduce.toFixed(2)} s`
  )
  console.log(
    `consume ${total}: raw kafkajs eachBatch ${rawConsume.toFixed(2)} s, Consumers worker ${fwConsume.toFixed(2)} s`
  )
  console.log(
    `idempotent producer: ${idempotentProduce.toFixed(2)} s for the same publishList (${
      (idempotentProduce / fwProduce).toFixed(2)
    }x the non-idempotent time)`
  )
  console.log(
    `RESULT produce_overhead_ratio=${produceRatio.toFixed(3)} consume_overhead_ratio=${consumeRatio.toFixed(3)}`
  )
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
