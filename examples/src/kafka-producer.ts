/**
 * A producer program: publishes orders to Kafka through the buffered `kafkaAsync` backend (batches of up to 500,
 * 50 ms linger), then a last one with `sync: true`; closing the program's scope flushes whatever is still buffered
 * before the producer disconnects.
 *
 * Run against a broker (e.g. `npm run broker`):
 * `KAFKA_BROKERS=127.0.0.1:9092 node --import tsx examples/src/kafka-producer.ts`
 */
import { DeimosConfig, JsonBackend, Producer } from "@deimos/core"
import { KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { NodeRuntime } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Order } from "./shared.js"

const orders = Producer.make({ topic: "orders", schema: Order, keyConfig: { field: "order_id" } })

const program = Effect.gen(function*() {
  const batch = Array.from({ length: 100 }, (_, i) => ({ order_id: `o-${i}`, customer: `c-${i % 3}`, amount: 10 * i }))
  yield* orders.publishList(batch)
  yield* orders.publish({ order_id: "o-last", customer: "c-0", amount: 1 }, { sync: true })
  yield* Console.log(`Published ${batch.length + 1} orders to 'orders'`)
}).pipe(Effect.withSpan("publish-orders"))

const Live = KafkaProducerBackend.layerAsync({ maxBatchSize: 500, maxLinger: "50 millis" }).pipe(
  Layer.provide(KafkaJs.layerConfig()),
  Layer.merge(JsonBackend.layer),
  Layer.merge(DeimosConfig.layerConfig())
)

program.pipe(Effect.provide(Live), NodeRuntime.runMain)
