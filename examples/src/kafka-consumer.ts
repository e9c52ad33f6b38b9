/**
 * A consumer worker: runs until SIGINT/SIGTERM, then finishes the message in hand, commits, leaves the group.
 *
 * Run against a broker: `KAFKA_BROKERS=127.0.0.1:9092 npx tsx examples/src/kafka-consumer.ts`
 */
import { Consumer, DeimosConfig, SchemaBackend } from "@deimos/core"
import { Consumers, KafkaJs } from "@deimos/kafka"
import { NodeRuntime } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Order } from "./shared.js"

const billing = Consumer.make({
  topic: "orders",
  groupId: "billing",
  schema: Order,
  keyConfig: { field: "order_id" },
  delivery: "batch",
  handle: (order, metadata) =>
    order === null
      ? Effect.logInfo(`order ${metadata.key} deleted`)
      : Effect.logInfo(`order ${order.order_id}: ${order.customer} pays ${order.amount}`)
})

const Live = Layer.mergeAll(KafkaJs.layerConfig(), SchemaBackend.layerJson, DeimosConfig.layerConfig())

Consumers.run([billing], { lagInterval: "30 seconds" }).pipe(Effect.provide(Live), NodeRuntime.runMain)
