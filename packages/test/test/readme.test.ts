// The README's example, kept true by running it.
import { Consumer, Producer, SchemaRef } from "@deimos/core"
import { expectSent, testConsumeMessage, TestLayer } from "@deimos/test"
import { it } from "@effect/vitest"
import { Effect, Schema } from "effect"

const Order = SchemaRef.fromSchema(
  Schema.Struct({ order_id: Schema.String, amount: Schema.Number }),
  { name: "Order", namespace: "com.example" }
)

const orders = Producer.make({ topic: "orders", schema: Order, keyConfig: { field: "order_id" } })

const billing = Consumer.make({
  topic: "orders",
  groupId: "billing",
  schema: Order,
  keyConfig: { field: "order_id" },
  handle: (order, metadata) => Effect.log(`order ${metadata.key}: ${order?.amount}`),
  errorPolicy: { retryOn: ["DatabaseUnavailable"], fatalOn: ["CorruptLedger"] }
})

it.effect("publishes and consumes", () =>
  Effect.gen(function*() {
    yield* orders.publish({ order_id: "o-1", amount: 42 })
    yield* expectSent("orders", { amount: 42 }, { key: "o-1" })
    yield* testConsumeMessage(billing, { order_id: "o-2", amount: 7 })
  }).pipe(Effect.provide(TestLayer.layer)))
