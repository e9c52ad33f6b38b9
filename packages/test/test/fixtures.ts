import { Consumer, Producer, SchemaRef } from "@deimos/core"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"

export const Order = SchemaRef.fromSchema(
  Schema.Struct({
    order_id: Schema.String,
    amount: Schema.Number,
    customer: Schema.Struct({ name: Schema.String, tier: Schema.Literal("gold", "silver") }),
    lines: Schema.Array(Schema.Struct({ sku: Schema.String, qty: Schema.Int }))
  }),
  { name: "com.shop.Order" }
)
export type Order = SchemaRef.Type<typeof Order>

export const order = (id: string, amount = 10): Order => ({
  order_id: id,
  amount,
  customer: { name: "Ada", tier: "gold" },
  lines: [{ sku: "A-1", qty: 2 }]
})

export const orders = Producer.make({ topic: "orders", schema: Order, keyConfig: { field: "order_id" } })

export class PaymentDeclined extends Data.TaggedError("PaymentDeclined")<{ readonly orderId: string }> {}

export const recordingConsumer = (seen: Ref.Ref<ReadonlyArray<unknown>>) =>
  Consumer.make({
    topic: "orders",
    groupId: "billing",
    schema: Order,
    keyConfig: { field: "order_id" },
    handle: (payload, metadata) =>
      payload.amount < 0
        ? Effect.fail(new PaymentDeclined({ orderId: payload.order_id }))
        : Ref.update(seen, (s) => [...s, { payload, key: metadata.key, headers: metadata.headers }])
  })
