/**
 * Framework overhead against raw kafkajs, in one run against the dev broker (in-process, ephemeral port):
 *
 * - produce: 200k messages through `Producer.publishList` (kafka backend, mock schema, batches of 500) versus raw
 *   kafkajs `producer.send` of the same bytes in the same batches; also the idempotent kafka backend;
 * - consume: the same 200k messages through a `Consumers` worker versus a raw kafkajs `eachBatch` loop that parses
 *   the JSON (as the mock backend does), resolves and commits per batch. The RESULT line uses `inlineBatch`
 *   delivery, the like-for-like counterpart of `eachBatch`; `batch` delivery (the handler per message) is printed
 *   too.
 *
 * Each side is warmed up first; then `BENCH_ROUNDS` (default 5) rounds in alternating order, and the best time of
 * each side is kept (the machine is shared: the best run is the least disturbed one). Each round's own ratios and
 * their median are printed too, to show the spread. Timings include connecting
 * and joining the group on both sides. Ends with `RESULT produce_overhead_ratio=X consume_overhead_ratio=Y`
 * (framework time / raw time).
 *
 * Run: `npm run bench:kafka` (`BENCH_MESSAGES`, `BENCH_ROUNDS` to change the size).
 */
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { Consumer, Producer, SchemaBackend, SchemaRef } from "@deimos/core"
import { Consumers, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { Kafka, logLevel, Partitioners } from "kafkajs"

const total = Number(process.env.BENCH_MESSAGES ?? 200_000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const warmup = Math.min(total, 20_000)
const batchSize = 500
const partitions = 3

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

const now = () => performance.now()
const seconds = (start: number) => (now() - start) / 1000
const best = (times: ReadonlyArray<number>) => Math.min(...times)
const fmt = (s: number) => `${s.toFixed(2)} s`

const program = Effect.gen(function*() {
  const broker = yield* KafkaBroker.make({ port: 0, maxMessageBytes: 16 * 1024 * 1024, partitions })
  const kafka = new Kafka({ brokers: [broker.broker], clientId: "bench-raw", logLevel: logLevel.NOTHING })
  const driver = KafkaJs.layer({ brokers: [broker.broker], clientId: "bench-fw", logLevel: "nothing" })
  const context = yield* Layer.build(Layer.merge(driver, SchemaBackend.layerMock))
  const backend = (idempotent: boolean) =>
    KafkaProducerBackend.layer({ idempotent }).pipe(Layer.provide(driver), Layer.merge(SchemaBackend.layerMock))

  // the same bytes for the raw side: keys as the producer encodes plain keys, values as the mock backend does
  const encoded = yield* Effect.forEach(
    payloads,
    (p) =>
      Effect.map(SchemaBackend.mock.encode(p, { schema: Payload, topic: "raw" }), (value) => ({
        key: Buffer.from(p.id),
        value: Buffer.from(value)
      }))
  )

  const admin = kafka.admin()
  yield* Effect.acquireRelease(Effect.promise(() => admin.connect()), () => Effect.promise(() => admin.disconnect()))
  const createTopic = (topic: string) =>
    Effect.promise(() => admin.createTopics({ topics: [{ topic, numPartitions: partitions }] }))
  const deleteTopic = (topic: string) => Effect.promise(() => admin.deleteTopics({ topics: [topic] }))

  // ---- produce
  const rawProduce = (topic: string, count: number) =>
    Effect.promise(async () => {
      const start = now()
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
      await producer.connect()
      for (let i = 0; i < count; i += batchSize) {
        await producer.send({ topic, acks: -1, messages: encoded.slice(i, Math.min(count, i + batchSize)) })
      }
      await producer.disconnect()
      return seconds(start)
    })

  const fwProduce = (topic: string, count: number, idempotent: boolean) =>
    Effect.gen(function*() {
      const producer = Producer.make({ topic, schema: Payload, keyConfig: { plain: true }, maxBatchSize: batchSize })
      const inputs = payloads.slice(0, count).map((p) => Producer.envelope(p, { key: p.id }))
      const start = now()
      yield* producer.publishList(inputs).pipe(Effect.provide(backend(idempotent)))
      return seconds(start)
    })

  // ---- consume
  let groups = 0
  const rawConsume = (topic: string, count: number) =>
    Effect.promise(async () => {
      const start = now()
      const consumer = kafka.consumer({ groupId: `raw-${++groups}`, maxBytesPerPartition: 4 * 1024 * 1024 })
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      let seen = 0
      const took = await new Promise<number>((resolve) => {
        void consumer.run({
          eachBatchAutoResolve: false,
          eachBatch: async ({ batch, commitOffsetsIfNecessary, resolveOffset }) => {
            for (const m of batch.messages) {
              JSON.parse(m.value!.toString())
              resolveOffset(m.offset)
              seen++
            }
            await commitOffsetsIfNecessary()
            if (seen >= count) resolve(seconds(start))
          }
        })
      })
      await consumer.disconnect()
      return took
    })

  const fwConsume = (topic: string, count: number, delivery: "inlineBatch" | "batch") =>
    Effect.gen(function*() {
      let seen = 0
      const done = yield* Deferred.make<void>()
      const add = (n: number) =>
        Effect.suspend(() => (seen += n) >= count ? Deferred.succeed(done, undefined) : Effect.void)
      const options = {
        topic,
        groupId: `fw-${++groups}`,
        schema: Payload,
        keyConfig: { plain: true },
        maxBytesPerPartition: 4 * 1024 * 1024
      } as const
      const consumer = delivery === "inlineBatch"
        ? Consumer.make({ ...options, delivery, handleBatch: (batch) => add(batch.length) })
        : Consumer.make({ ...options, delivery, handle: () => add(1) })
      const start = now()
      const fiber = yield* Effect.fork(Consumers.run([consumer]))
      yield* Deferred.await(done)
      const took = seconds(start)
      yield* Fiber.interrupt(fiber)
      return took
    }).pipe(Effect.provide(context))

  // ---- warm-up (JIT, connections, broker code paths)
  yield* createTopic("warm")
  yield* rawProduce("warm", warmup)
  yield* fwProduce("warm", warmup, false)
  yield* fwProduce("warm", warmup, true)
  yield* rawConsume("warm", warmup)
  yield* fwConsume("warm", warmup, "inlineBatch")
  yield* fwConsume("warm", warmup, "batch")
  yield* deleteTopic("warm")

  const times = { raw: [] as Array<number>, fw: [] as Array<number>, idem: [] as Array<number> }
  const consume = { raw: [] as Array<number>, inline: [] as Array<number>, batch: [] as Array<number> }
  for (let round = 0; round < rounds; round++) {
    const [raw, fw, idem] = [`raw-${round}`, `fw-${round}`, `idem-${round}`]
    yield* Effect.forEach([raw, fw, idem], createTopic)
    const produceSteps = [
      Effect.map(rawProduce(raw, total), (t) => times.raw.push(t)),
      Effect.map(fwProduce(fw, total, false), (t) => times.fw.push(t)),
      Effect.map(fwProduce(idem, total, true), (t) => times.idem.push(t))
    ]
    yield* Effect.all(round % 2 === 0 ? produceSteps : [...produceSteps].reverse(), { discard: true })
    const consumeSteps = [
      Effect.map(rawConsume(fw, total), (t) => consume.raw.push(t)),
      Effect.map(fwConsume(fw, total, "inlineBatch"), (t) => consume.inline.push(t)),
      Effect.map(fwConsume(fw, total, "batch"), (t) => consume.batch.push(t))
    ]
    yield* Effect.all(round % 2 === 0 ? consumeSteps : [...consumeSteps].reverse(), { discard: true })
    yield* Effect.forEach([raw, fw, idem], deleteTopic)
    console.log(
      `round ${round + 1}: produce raw ${fmt(times.raw[round])}, framework ${fmt(times.fw[round])}, idempotent ${
        fmt(times.idem[round])
      }; consume raw ${fmt(consume.raw[round])}, inlineBatch ${fmt(consume.inline[round])}, batch ${
        fmt(consume.batch[round])
      }`
    )
  }

  const produceRatio = best(times.fw) / best(times.raw)
  const consumeRatio = best(consume.inline) / best(consume.raw)
  const median = (xs: ReadonlyArray<number>) => {
    const sorted = [...xs].sort((a, b) => a - b)
    return sorted.length % 2 === 1
      ? sorted[(sorted.length - 1) / 2]
      : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2
  }
  const perRound = (fw: ReadonlyArray<number>, raw: ReadonlyArray<number>) => fw.map((t, i) => t / raw[i])
  const fmtRatios = (xs: ReadonlyArray<number>) =>
    `${xs.map((x) => x.toFixed(2)).join(" ")} (median ${median(xs).toFixed(3)})`
  console.log(`per-round produce ratios: ${fmtRatios(perRound(times.fw, times.raw))}`)
  console.log(`per-round consume ratios (inlineBatch): ${fmtRatios(perRound(consume.inline, consume.raw))}`)
  console.log(`best of ${rounds} rounds, ${total} messages of ~200 bytes, ${partitions} partitions:`)
  console.log(
    `produce: raw kafkajs producer.send ${fmt(best(times.raw))}, Producer.publishList (kafka backend) ${
      fmt(best(times.fw))
    }`
  )
  console.log(
    `consume: raw kafkajs eachBatch ${fmt(best(consume.raw))}, Consumers worker inlineBatch ${
      fmt(best(consume.inline))
    }, batch (handler per message) ${fmt(best(consume.batch))} (${
      (best(consume.batch) / best(consume.raw)).toFixed(3)
    }x raw, ${((best(consume.batch) - best(consume.raw)) / total * 1e6).toFixed(1)} µs per message)`
  )
  console.log(
    `idempotent producer: ${fmt(best(times.idem))} for the same publishList (${
      (best(times.idem) / best(times.fw)).toFixed(3)
    }x the non-idempotent time)`
  )
  console.log(
    `RESULT produce_overhead_ratio=${produceRatio.toFixed(3)} consume_overhead_ratio=${consumeRatio.toFixed(3)}`
  )
})

Effect.runPromise(Effect.scoped(program).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
