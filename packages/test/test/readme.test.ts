// The README's example, kept true by running it.
import { Consumer, Producer, SchemaRef } from "@deimos/core"
import { expectSent, testConsumeMessage, TestLayer } from "@deimos/test"
import { it } from "@effect/vitest"
import { Data, Effect, Schema } from "effect"

const Order = SchemaRef.fromSchema(
  Schema.Struct({ order_id: Schema.String, amount: Schema.Number }),
  { name: "Order", namespace: "com.example" }
)

class LedgerUnavailable extends Data.TaggedError("LedgerUnavailable")<{}> {}
class InvalidAmount extends Data.TaggedError("InvalidAmount")<{ readonly amount: number }> {}

const charge = (amount: number): Effect.Effect<void, LedgerUnavailable | InvalidAmount> =>
  amount < 0 ? Effect.fail(new InvalidAmount({ amount })) : Effect.log(`charged ${amount}`)

// publish(payload) is typed by the schema; the key comes from the order_id field.
const orders = Producer.make({ topic: "orders", schema: Order, keyConfig: { field: "order_id" } })

// The policy's tags are checked against the handler's errors: a typo does not compile.
const billing = Consumer.make({
  topic: "orders",
  groupId: "billing",
  schema: Order,
  keyConfig: { field: "order_id" },
  handle: (order) => charge(order.amount),
  errorPolicy: { retryOn: ["LedgerUnavailable"], deadLetterOn: ["InvalidAmount"] }
})

it.effect("publishes and consumes", () =>
  Effect.gen(function*() {
    yield* orders.publish({ order_id: "o-1", amount: 42 })
    yield* expectSent("orders", { amount: 42 }, { key: "o-1" })
    yield* testConsumeMessage(billing, { order_id: "o-2", amount: 7 })
  }).pipe(Effect.provide(TestLayer.layer)))
