/** The schema shared by the producer and consumer examples. */
import { SchemaRef } from "@deimos/core"
import * as Schema from "effect/Schema"

export const Order = SchemaRef.fromSchema(
  Schema.Struct({
    order_id: Schema.String,
    customer: Schema.String,
    amount: Schema.Number,
    message_id: Schema.optional(Schema.String),
    timestamp: Schema.optional(Schema.Date)
  }),
  { name: "Order", namespace: "com.example.shop" }
)
