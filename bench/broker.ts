/**
 * Dev broker throughput with kafkajs: batched produce then consume of 200k messages of 200 bytes on one topic with
 * 3 partitions. Prints messages/s for each as kafkajs sees them, and the broker's own capacity (messages per second
 * of the time the broker spent handling the requests, measured in the same run).
 *
 * kafkajs encodes records in JavaScript on the thread that calls `send`, and that encoding, not the broker, limits a
 * single producer on this machine; so the produce phase runs `BENCH_PRODUCERS` kafkajs producers (default 2, one
 * per core) in worker threads, each sending its share of the messages in batches. The broker runs on the main
 * thread, and one kafkajs consumer there reads everything back.
 *
 * Run: `npm run bench:broker` (`BENCH_MESSAGES`, `BENCH_PRODUCERS` to vary)
 */
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import * as Effect from "effect/Effect"
import { Kafka, logLevel, Partitioners } from "kafkajs"
import * as os from "node:os"
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads"

const total = Number(process.env.BENCH_MESSAGES ?? 200_000)
const producers = Number(process.env.BENCH_PRODUCERS ?? Math.max(1, Math.min(2, os.availableParallelism())))
const topic = "bench"
/** Messages each producer sends to another topic before the measured run. */
const warmupTopic = "bench-warmup"
const warmup = 20_000
const partitions = 3
/** Messages per partition in one `send` (kafkajs groups a send's messages per partition in quadratic time). */
const perPartition = 250
/** `send` calls in flight per producer (kafkajs pipelines them on one connection). */
const inFlight = 4

interface Share {
  readonly broker: string
  readonly first: number
  readonly count: number
}

type FromWorker = { readonly _tag: "Ready" } | { readonly _tag: "Done" } | {
  readonly _tag: "Failed"
  readonly error: string
}

/** A producer worker: connects, says Ready, sends its share when told to go, says Done. */
const producerWorker = async (share: Share) => {
  const port = parentPort!
  const value = Buffer.alloc(200, "x")
  const kafka = new Kafka({ brokers: [share.broker], clientId: "bench-producer", logLevel: logLevel.NOTHING })
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const perSend = perPartition * partitions
  const sendAll = async (to: string, first: number, count: number) => {
    const sends = Math.ceil(count / perSend)
    let next = 0
    const lane = async () => {
      while (next < sends) {
        const s = next++
        const from = first + s * perSend
        await producer.send({
          topic: to,
          messages: Array.from({ length: Math.min(perSend, first + count - from) }, (_, i) => ({
            key: String(from + i),
            value,
            partition: i % partitions
          }))
        })
      }
    }
    await Promise.all(Array.from({ length: inFlight }, lane))
  }
  // the same code path, unmeasured, so the JIT has compiled kafkajs's encoder before the clock starts
  await sendAll(warmupTopic, 0, warmup)
  const go = new Promise<void>((resolve) => port.once("message", () => resolve()))
  port.postMessage({ _tag: "Ready" } satisfies FromWorker)
  await go
  await sendAll(topic, share.first, share.count)
  port.postMessage({ _tag: "Done" } satisfies FromWorker)
  await producer.disconnect()
}

/** Starts a worker thread running this file (through tsx) with its share; terminated when the scope closes. */
const spawn = (share: Share) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const url = JSON.stringify(import.meta.url)
      return new Worker(`import("tsx/esm/api").then((tsx) => tsx.tsImport(${url}, ${url}))`, {
        eval: true,
        workerData: share
      })
    }),
    (worker) => Effect.promise(() => worker.terminate())
  )

/** Waits for the worker's next message of the given tag. */
const next = (worker: Worker, tag: FromWorker["_tag"]) =>
  Effect.async<void, Error>((resume) => {
    const onMessage = (message: FromWorker) => {
      if (message._tag === tag) resume(Effect.void)
      else if (message._tag === "Failed") resume(Effect.fail(new Error(message.error)))
    }
    const onError = (error: Error) => resume(Effect.fail(error))
    worker.on("message", onMessage)
    worker.once("error", onError)
    return Effect.sync(() => {
      worker.off("message", onMessage)
      worker.off("error", onError)
    })
  })

const produce = (broker: string, stats: () => { readonly busyMs: number }) =>
  Effect.gen(function*() {
    const share = Math.ceil(total / producers)
    const workers = yield* Effect.forEach(
      Array.from({ length: producers }, (_, i) => ({
        broker,
        first: i * share,
        count: Math.max(0, Math.min(share, total - i * share))
      })),
      (s) => spawn(s)
    )
    yield* Effect.forEach(workers, (w) => next(w, "Ready"), { concurrency: "unbounded" })
    const busyMs = stats().busyMs
    const start = performance.now()
    for (const w of workers) w.postMessage("go")
    yield* Effect.forEach(workers, (w) => next(w, "Done"), { concurrency: "unbounded" })
    return { busyMs, seconds: (performance.now() - start) / 1000 }
  })

const consume = (broker: string) =>
  Effect.tryPromise(async () => {
    const kafka = new Kafka({ brokers: [broker], clientId: "bench-consumer", logLevel: logLevel.NOTHING })
    const consumer = kafka.consumer({ groupId: "bench-g", maxBytesPerPartition: 4 * 1024 * 1024 })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    let consumed = 0
    let start = 0
    const seconds = await new Promise<number>((resolve) => {
      void consumer.run({
        eachBatchAutoResolve: true,
        eachBatch: async ({ batch }) => {
          if (start === 0) start = performance.now()
          consumed += batch.messages.length
          if (consumed >= total) resolve((performance.now() - start) / 1000)
        }
      })
    })
    await consumer.disconnect()
    return seconds
  })

const createTopic = (broker: string) =>
  Effect.tryPromise(async () => {
    const admin = new Kafka({ brokers: [broker], clientId: "bench-admin", logLevel: logLevel.NOTHING }).admin()
    await admin.connect()
    await admin.createTopics({
      topics: [topic, warmupTopic].map((name) => ({ topic: name, numPartitions: partitions }))
    })
    await admin.disconnect()
  })

const program = Effect.gen(function*() {
  const broker = yield* KafkaBroker.make({ port: 0, maxMessageBytes: 16 * 1024 * 1024 })
  yield* createTopic(broker.broker)
  const { busyMs: busyBefore, seconds: produceSeconds } = yield* Effect.scoped(produce(broker.broker, broker.stats))
  const busyAfterProduce = broker.stats().busyMs
  const produceBusy = (busyAfterProduce - busyBefore) / 1000
  const produced = broker.stats().producedRecords - producers * warmup
  if (produced !== total) return yield* Effect.fail(new Error(`the broker holds ${produced} records, not ${total}`))
  const consumeSeconds = yield* consume(broker.broker)
  const consumeBusy = (broker.stats().busyMs - busyAfterProduce) / 1000

  const produceRate = Math.round(total / produceSeconds)
  const consumeRate = Math.round(total / consumeSeconds)
  const produceCapacity = Math.round(total / produceBusy)
  const consumeCapacity = Math.round(total / consumeBusy)
  console.log(
    `produce: ${total} messages of 200 bytes from ${producers} kafkajs producer(s), ${perPartition} per partition ` +
      `per send, in ${produceSeconds.toFixed(2)} s = ${produceRate} msg/s`
  )
  console.log(
    `consume: ${total} messages by one kafkajs consumer in ${consumeSeconds.toFixed(2)} s = ${consumeRate} msg/s`
  )
  console.log(
    `broker time: produce ${produceBusy.toFixed(2)} s (capacity ${produceCapacity} msg/s), ` +
      `consume ${consumeBusy.toFixed(2)} s (capacity ${consumeCapacity} msg/s)`
  )
  console.log(`RESULT broker_produce_msgs_per_s=${produceRate} broker_consume_msgs_per_s=${consumeRate}`)
})

if (isMainThread) {
  Effect.runPromise(Effect.scoped(program)).catch((error) => {
    console.error(error)
    process.exit(1)
  })
} else {
  producerWorker(workerData as Share).catch((error) =>
    parentPort!.postMessage({ _tag: "Failed", error: String(error) } satisfies FromWorker)
  )
}
