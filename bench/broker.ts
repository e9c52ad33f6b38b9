/**
 * Dev broker throughput with kafkajs: batched produce then consume of 200k messages of 200 bytes on one topic with
 * 3 partitions. Prints messages/s for each as kafkajs sees them, and the broker's own capacity (messages per
 * second of the time the broker spent handling the requests, measured in the same run): kafkajs's encoding is what
 * limits the first figure on this machine, not the broker.
 *
 * Run: `npm run bench:broker`
 */
import { KafkaBroker } from "@deimos/broker"
import * as Effect from "effect/Effect"
import { Kafka, logLevel, Partitioners } from "kafkajs"

const total = Number(process.env.BENCH_MESSAGES ?? 200_000)
const batchSize = 1000
const inFlight = 4
const value = Buffer.alloc(200, "x")

const run = (broker: string, stats: () => { readonly busyMs: number }) =>
  Effect.promise(async () => {
    const kafka = new Kafka({ brokers: [broker], clientId: "bench", logLevel: logLevel.NOTHING })
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ topics: [{ topic: "bench", numPartitions: 3 }] })
    await admin.disconnect()

    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
    await producer.connect()
    const produceStart = performance.now()
    // batches of 1000 per partition, several requests in flight (kafkajs pipelines them on one connection)
    const batches = Math.ceil(total / batchSize)
    let next = 0
    const lane = async () => {
      while (next < batches) {
        const b = next++
        const count = Math.min(batchSize, total - b * batchSize)
        await producer.send({
          topic: "bench",
          messages: Array.from(
            { length: count },
            (_, i) => ({ key: String(b * batchSize + i), value, partition: b % 3 })
          )
        })
      }
    }
    await Promise.all(Array.from({ length: inFlight }, lane))
    const produceSeconds = (performance.now() - produceStart) / 1000
    const produceBusy = stats().busyMs / 1000
    await producer.disconnect()

    const consumer = kafka.consumer({ groupId: "bench-g", maxBytesPerPartition: 4 * 1024 * 1024 })
    await consumer.connect()
    await consumer.subscribe({ topic: "bench", fromBeginning: true })
    let consumed = 0
    let consumeStart = 0
    const consumeSeconds = await new Promise<number>((resolve) => {
      void consumer.run({
        eachBatchAutoResolve: true,
        eachBatch: async ({ batch }) => {
          if (consumeStart === 0) consumeStart = performance.now()
          consumed += batch.messages.length
          if (consumed >= total) resolve((performance.now() - consumeStart) / 1000)
        }
      })
    })
    const consumeBusy = stats().busyMs / 1000 - produceBusy
    await consumer.disconnect()
    return { produceSeconds, consumeSeconds, produceBusy, consumeBusy }
  })

const program = Effect.gen(function*() {
  const broker = yield* KafkaBroker.make({ port: 0, maxMessageBytes: 16 * 1024 * 1024 })
  const { consumeBusy, consumeSeconds, produceBusy, produceSeconds } = yield* run(broker.broker, broker.stats)
  const produceRate = Math.round(total / produceSeconds)
  const consumeRate = Math.round(total / consumeSeconds)
  console.log(
    `produce: ${total} messages of ${value.length} bytes in ${produceSeconds.toFixed(2)} s = ${produceRate} msg/s`
  )
  console.log(`consume: ${total} messages in ${consumeSeconds.toFixed(2)} s = ${consumeRate} msg/s`)
  // the broker's own share: messages per second of time it spent handling requests in the same run
  const produceCapacity = Math.round(total / produceBusy)
  const consumeCapacity = Math.round(total / consumeBusy)
  console.log(
    `broker time: produce ${produceBusy.toFixed(2)} s (${
      (100 * produceBusy / produceSeconds).toFixed(0)
    }% of the run, ` +
      `capacity ${produceCapacity} msg/s), consume ${consumeBusy.toFixed(2)} s (capacity ${consumeCapacity} msg/s)`
  )
  console.log(
    `RESULT broker_produce_msgs_per_s=${produceRate} broker_consume_msgs_per_s=${consumeRate} ` +
      `broker_produce_capacity_msgs_per_s=${produceCapacity} broker_consume_capacity_msgs_per_s=${consumeCapacity}`
  )
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
