/**
 * A producer program: publishes orders to Kafka through the `kafka` backend.
 *
 * Run against a broker (e.g. `npm run broker`): `KAFKA_BROKERS=127.0.0.1:9092 npx tsx examples/src/kafka-producer.ts`
 */
import { DeimosConfig, Producer, SchemaBackend } from "@deimos/core"
import { KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { NodeRuntime } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Order } from "./shared.js"

const orders = Producer.make({ topic: "orders", schema: Order, keyConfig: { field: "order_id" } })

const program = Effect.gen(function*() {
  const batch = Array.from({ length: 10 }, (_, i) => ({ order_id: `o-${i}`, customer: `c-${i % 3}`, amount: 10 * i }))
  yield* orders.publishList(batch)
  yield* Console.log(`Published ${batch.length} orders to 'orders'`)
})

const Live = KafkaProducerBackend.layer().pipe(
  Layer.provide(KafkaJs.layerConfig()),
  Layer.merge(SchemaBackend.layerJson),
  Layer.merge(DeimosConfig.layerConfig())
)

program.pipe(Effect.provide(Live), NodeRuntime.runMain)
