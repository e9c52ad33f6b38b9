/**
 * Framework overhead against raw kafkajs, in one run against the dev broker (in-process, ephemeral port), with the
 * same bytes and the same decoding (the mock backend's JSON) on both sides:
 *
 * - produce: 200k messages through `Producer.publishList` (kafka backend, batches of 500) versus raw kafkajs
 *   `producer.send` of the same bytes in the same batches; the idempotent kafka backend is printed too;
 * - consume, batch paths: a `Consumers` worker with `inlineBatch` delivery versus a raw `eachBatch` loop that parses
 *   each value, resolves and commits per batch;
 * - consume, per-message paths: `delivery: "message"` (the default) and `"batch"` versus raw kafkajs `eachMessage`
 *   (which commits per fetched batch by default, as the toolkit does) and versus `eachBatch` with a per-message loop;
 * - publish one: `publish(one)` awaited in a loop versus raw `producer.send` of one message, and 20k publishes at a
 *   concurrency of 100 (`Effect.forEach`) versus raw `Promise`s with the same concurrency.
 *
 * Each side is warmed up first; then `BENCH_ROUNDS` (default 5) rounds, the sides in alternating order. Every ratio
 * is the **median of the per-round ratios** (framework time / raw time of the same round), so a disturbed round
 * moves one sample, not the result; each round's ratios are printed. Timings include connecting and joining the
 * group on both sides. The default settings are measured (Effect's own tracer, no exporter); the per-message
 * consumer and publish(one) are printed once more with a tracer that records every span (what an exporter costs
 * before any I/O). Ends with
 * `RESULT produce_overhead_ratio=… consume_overhead_ratio=… consume_message_overhead_ratio=… publish_one_overhead_ratio=…`.
 *
 * Run: `npm run bench:kafka` (`BENCH_MESSAGES`, `BENCH_ROUNDS`, `BENCH_PUBLISH_ONE` to change the sizes).
 */
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { Consumer, DeimosConfig, MockBackend, Producer, SchemaRef } from "@deimos/core"
import { Consumers, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { Kafka, logLevel, Partitioners } from "kafkajs"
import { median } from "./shared.js"

const total = Number(process.env.BENCH_MESSAGES ?? 200_000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const publishOnes = Number(process.env.BENCH_PUBLISH_ONE ?? 5_000)
const concurrentPublishes = 20_000
const concurrency = 100
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
const fmt = (s: number) => `${s.toFixed(2)} s`

/** A tracer that keeps every span it is given, ended (an exporter's work before its I/O). */
const recordingTracer = (): Tracer.Tracer => {
  return Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: Math.random().toString(16).slice(2, 18).padEnd(16, "0"),
        traceId: Option.isSome(parent) ? parent.value.traceId : Math.random().toString(16).slice(2).padEnd(32, "0"),
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links,
        sampled: true,
        kind,
        end: (endTime, exit) => {
          ;(span as { status: Tracer.SpanStatus }).status = { _tag: "Ended", startTime, endTime, exit }
        },
        attribute: (key, value) => {
          attributes.set(key, value)
        },
        event: () => {},
        addLinks: () => {}
      }
      return span
    },
    context: (f) => f()
  })
}

const program = Effect.gen(function*() {
  const broker = yield* KafkaBroker.make({ port: 0, maxMessageBytes: 16 * 1024 * 1024, partitions })
  const kafka = new Kafka({ brokers: [broker.broker], clientId: "bench-raw", logLevel: logLevel.NOTHING })
  const driver = KafkaJs.layer({ brokers: [broker.broker], clientId: "bench-fw", logLevel: "nothing" })
  const base = Layer.mergeAll(MockBackend.layerMock, DeimosConfig.layer())
  const context = yield* Layer.build(Layer.merge(driver, base))
  const backend = (idempotent: boolean) =>
    KafkaProducerBackend.layer({ idempotent }).pipe(Layer.provide(driver), Layer.merge(base))

  // the same bytes for the raw side: keys as the producer encodes plain keys, values as the mock backend does
  const codec = yield* MockBackend.mock.codec(Payload, "raw", "write")
  const encoded = payloads.map((p) => ({ key: Buffer.from(p.id), value: Buffer.from(Effect.runSync(codec.encode(p))) }))

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

  // ---- publish one
  /** Raw: `producer.send` of one message, awaited `count` times, or `count` sends with `parallel` in flight. */
  const rawPublishOne = (topic: string, count: number, parallel: number) =>
    Effect.promise(async () => {
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
      await producer.connect()
      const start = now()
      let next = 0
      const worker = async () => {
        while (next < count) {
          const i = next++
          await producer.send({ topic, acks: -1, messages: [encoded[i % encoded.length]] })
        }
      }
      await Promise.all(Array.from({ length: parallel }, worker))
      const took = seconds(start)
      await producer.disconnect()
      return took
    })

  const fwPublishOne = (topic: string, count: number, parallel: number) =>
    Effect.scoped(Effect.gen(function*() {
      const producer = Producer.make({ topic, schema: Payload, keyConfig: { plain: true } })
      const env = yield* Layer.build(backend(false))
      const start = now()
      yield* Effect.forEach(
        Array.from({ length: count }, (_, i) => payloads[i % payloads.length]),
        (p) => producer.publish(p, { key: p.id }),
        { concurrency: parallel, discard: true }
      ).pipe(Effect.provide(env))
      return seconds(start)
    }))

  // ---- consume
  let groups = 0
  /** Raw kafkajs: `eachBatch` (resolve, commit per batch), `eachMessage`, or `eachBatch` calling a per-message function. */
  const rawConsume = (topic: string, count: number, mode: "eachBatch" | "eachMessage" | "eachBatchPerMessage") =>
    Effect.promise(async () => {
      const start = now()
      const consumer = kafka.consumer({ groupId: `raw-${++groups}`, maxBytesPerPartition: 4 * 1024 * 1024 })
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      let seen = 0
      const handle = async (value: Buffer | null) => {
        JSON.parse(value!.toString())
        seen++
      }
      const took = await new Promise<number>((resolve) => {
        if (mode === "eachMessage") {
          void consumer.run({
            eachMessage: async ({ message }) => {
              await handle(message.value)
              if (seen >= count) resolve(seconds(start))
            }
          })
          return
        }
        void consumer.run({
          eachBatchAutoResolve: false,
          eachBatch: async ({ batch, commitOffsetsIfNecessary, resolveOffset }) => {
            for (const m of batch.messages) {
              if (mode === "eachBatchPerMessage") await handle(m.value)
              else {
                JSON.parse(m.value!.toString())
                seen++
              }
              resolveOffset(m.offset)
            }
            await commitOffsetsIfNecessary()
            if (seen >= count) resolve(seconds(start))
          }
        })
      })
      await consumer.disconnect()
      return took
    })

  const fwConsume = (topic: string, count: number, delivery: "inlineBatch" | "batch" | "message") =>
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

  const traced = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.withTracer(effect, recordingTracer())

  // ---- warm-up (JIT, connections, broker code paths)
  yield* createTopic("warm")
  yield* rawProduce("warm", warmup)
  yield* fwProduce("warm", warmup, false)
  yield* fwProduce("warm", warmup, true)
  for (const mode of ["eachBatch", "eachMessage", "eachBatchPerMessage"] as const) {
    yield* rawConsume("warm", warmup, mode)
  }
  for (const delivery of ["inlineBatch", "batch", "message"] as const) yield* fwConsume("warm", warmup, delivery)
  yield* rawPublishOne("warm", 500, 1)
  yield* fwPublishOne("warm", 500, 1)
  yield* rawPublishOne("warm", 2000, concurrency)
  yield* fwPublishOne("warm", 2000, concurrency)
  yield* deleteTopic("warm")

  const sides = [
    "rawProduce",
    "produce",
    "idempotent",
    "rawBatch",
    "inline",
    "rawMessage",
    "rawBatchPerMessage",
    "message",
    "batch",
    "messageTraced",
    "rawOne",
    "one",
    "oneTraced",
    "rawConcurrent",
    "concurrent"
  ] as const
  type Side = typeof sides[number]
  const times = Object.fromEntries(sides.map((s) => [s, [] as Array<number>])) as Record<Side, Array<number>>
  const step = <E>(side: Side, effect: Effect.Effect<number, E, never>) =>
    Effect.map(effect, (t) => {
      times[side].push(t)
    })
  for (let round = 0; round < rounds; round++) {
    const [raw, fw, idem, one] = [`raw-${round}`, `fw-${round}`, `idem-${round}`, `one-${round}`]
    yield* Effect.forEach([raw, fw, idem, one], createTopic)
    const order = <A>(steps: ReadonlyArray<A>) => round % 2 === 0 ? steps : [...steps].reverse()
    yield* Effect.all(
      order([
        step("rawProduce", rawProduce(raw, total)),
        step("produce", fwProduce(fw, total, false)),
        step("idempotent", fwProduce(idem, total, true))
      ]),
      { discard: true }
    )
    yield* Effect.all(
      order([
        step("rawBatch", rawConsume(fw, total, "eachBatch")),
        step("inline", fwConsume(fw, total, "inlineBatch")),
        step("rawMessage", rawConsume(fw, total, "eachMessage")),
        step("rawBatchPerMessage", rawConsume(fw, total, "eachBatchPerMessage")),
        step("message", fwConsume(fw, total, "message")),
        step("batch", fwConsume(fw, total, "batch")),
        step("messageTraced", traced(fwConsume(fw, total, "message")))
      ]),
      { discard: true }
    )
    yield* Effect.all(
      order([
        step("rawOne", rawPublishOne(one, publishOnes, 1)),
        step("one", fwPublishOne(one, publishOnes, 1)),
        step("oneTraced", traced(fwPublishOne(one, publishOnes, 1))),
        step("rawConcurrent", rawPublishOne(one, concurrentPublishes, concurrency)),
        step("concurrent", fwPublishOne(one, concurrentPublishes, concurrency))
      ]),
      { discard: true }
    )
    yield* Effect.forEach([raw, fw, idem, one], deleteTopic)
    console.log(
      `round ${round + 1}: ` + sides.map((s) => `${s} ${times[s][round].toFixed(2)}`).join(", ") + " (seconds)"
    )
  }

  const ratios = (fw: Side, raw: Side) => times[fw].map((t, i) => t / times[raw][i])
  const ratio = (fw: Side, raw: Side) => median(ratios(fw, raw))
  const line = (label: string, fw: Side, raw: Side, count: number) =>
    console.log(
      `${label.padEnd(44)} ${ratio(fw, raw).toFixed(3)}x  (per round: ${
        ratios(fw, raw).map((x) => x.toFixed(2)).join(" ")
      }; median ${fmt(median(times[fw]))} vs ${fmt(median(times[raw]))}, ${
        ((median(times[fw]) - median(times[raw])) / count * 1e6).toFixed(1)
      } µs per message)`
    )
  console.log(`\n${total} messages of ~200 bytes, ${partitions} partitions, median of ${rounds} per-round ratios:`)
  line("produce: publishList vs producer.send", "produce", "rawProduce", total)
  line("produce: idempotent publishList vs plain", "idempotent", "produce", total)
  line("consume: inlineBatch vs eachBatch", "inline", "rawBatch", total)
  line("consume: message delivery vs eachMessage", "message", "rawMessage", total)
  line("consume: batch delivery vs eachMessage", "batch", "rawMessage", total)
  line("consume: message delivery vs eachBatch+loop", "message", "rawBatchPerMessage", total)
  line("consume: message delivery, spans recorded", "messageTraced", "rawMessage", total)
  line(`publish(one) x${publishOnes} vs producer.send(one)`, "one", "rawOne", publishOnes)
  line("publish(one), spans recorded", "oneTraced", "rawOne", publishOnes)
  line(
    `${concurrentPublishes} publishes, concurrency ${concurrency}`,
    "concurrent",
    "rawConcurrent",
    concurrentPublishes
  )
  console.log(
    `RESULT produce_overhead_ratio=${ratio("produce", "rawProduce").toFixed(3)} consume_overhead_ratio=${
      ratio("inline", "rawBatch").toFixed(3)
    } consume_message_overhead_ratio=${ratio("message", "rawMessage").toFixed(3)} publish_one_overhead_ratio=${
      ratio("one", "rawOne").toFixed(3)
    }`
  )
})

Effect.runPromise(Effect.scoped(program).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
