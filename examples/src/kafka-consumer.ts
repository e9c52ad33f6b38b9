/**
 * A consumer worker: `Consumers.layer` runs the billing consumer (two group members) and reports its lag every 30
 * seconds until SIGINT/SIGTERM; then it stops fetching, finishes the batch in hand, commits, leaves the group and
 * disconnects. `Background.launch` ends the program with a fatal handler error (naming consumer, topic, partition
 * and offset) and a non-zero exit.
 *
 * Run against a broker (e.g. `npm run broker`), with a runner that passes signals on to the worker (`npx tsx` does
 * not: it exits on SIGTERM and leaves the worker running):
 * `KAFKA_BROKERS=127.0.0.1:9092 node --import tsx examples/src/kafka-consumer.ts`
 */
import { Background, Consumer, DeimosConfig, JsonBackend } from "@deimos/core"
import { Consumers, KafkaJs } from "@deimos/kafka"
import { NodeRuntime } from "@effect/platform-node"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Order } from "./shared.js"

class PaymentDeclined extends Data.TaggedError("PaymentDeclined")<{ readonly orderId: string }> {}

const billing = Consumer.make({
  topic: "orders",
  groupId: "billing",
  schema: Order,
  keyConfig: { field: "order_id" },
  delivery: "batch",
  maxConcurrency: 2,
  // declined payments are retried with backoff (the batch is not committed meanwhile); other errors are logged,
  // counted and skipped
  errorPolicy: { retryOn: ["PaymentDeclined"], backoff: { min: "1 second", max: "1 minute" } },
  handle: (order) =>
    order.amount < 0
      ? new PaymentDeclined({ orderId: order.order_id })
      : Effect.logInfo(`order ${order.order_id}: ${order.customer} pays ${order.amount}`)
})

const Live = Layer.mergeAll(KafkaJs.layerConfig(), JsonBackend.layer, DeimosConfig.layerConfig())

Consumers.layer([billing], { lagInterval: "30 seconds" }).pipe(
  Layer.provide(Live),
  Background.launch,
  NodeRuntime.runMain
)
