/**
 * The zero-setup demo: define a schema, a producer and a consumer; publish orders; deliver what was sent to the
 * consumer through the same decode → handler → error-policy path the Kafka runtime uses; print both sides.
 *
 * Run: `npm run demo`
 */
import { Consumer, Producer, ProducerBackend, SchemaBackend, SchemaRef, SentMessages, Tombstone } from "@deimos/core"
import { NodeRuntime } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"

// A schema handle: the payload type of producers and consumers comes from it.
const Order = SchemaRef.fromSchema(
  Schema.Struct({
    order_id: Schema.String,
    customer: Schema.String,
    amount: Schema.Number,
    message_id: Schema.optional(Schema.String),
    timestamp: Schema.optional(Schema.Date)
  }),
  { name: "Order", namespace: "com.example.shop" }
)

// Keyed by the order id; message_id and timestamp are filled in by the pipeline.
const orders = Producer.make({ topic: "orders", schema: Order, keyConfig: { field: "order_id" } })

class InvalidAmount extends Data.TaggedError("InvalidAmount")<{ readonly orderId: string }> {
  override get message() {
    return `Order ${this.orderId} has a negative amount`
  }
}

const program = Effect.gen(function*() {
  const ledger = yield* Ref.make(new Map<string, number>())

  const billing = Consumer.make({
    topic: "orders",
    groupId: "billing",
    schema: Order,
    keyConfig: { field: "order_id" },
    delivery: "batch",
    handle: (order, metadata) =>
      order === null
        ? Ref.update(ledger, (m) => (m.delete(String(metadata.key)), m)).pipe(
          Effect.zipRight(Console.log(`  consumed tombstone for ${metadata.key} → removed`))
        )
        : order.amount < 0
        ? Effect.fail(new InvalidAmount({ orderId: order.order_id }))
        : Ref.update(ledger, (m) => m.set(order.order_id, order.amount)).pipe(
          Effect.zipRight(Console.log(`  consumed ${order.order_id}: ${order.customer} pays ${order.amount}`))
        )
  })

  yield* Console.log("Publishing 4 orders and a tombstone to topic 'orders'…")
  yield* orders.publishList([
    { order_id: "o-1", customer: "Ada", amount: 42 },
    { order_id: "o-2", customer: "Grace", amount: 17.5 },
    { order_id: "o-3", customer: "Linus", amount: -1 },
    { order_id: "o-4", customer: "Barbara", amount: 99 },
    Tombstone.make("o-2")
  ])

  const sent = yield* Effect.flatMap(SentMessages.SentMessages, (s) => s.forTopic("orders"))
  for (const m of sent) {
    const payload = m.payload as { amount?: number; message_id?: string } | null
    yield* Console.log(
      `  produced key=${m.key} ${
        payload === null ? "tombstone" : `amount=${payload.amount} message_id=${payload.message_id?.slice(0, 8)}…`
      } (${m.encodedPayload?.length ?? 0} bytes)`
    )
  }

  yield* Console.log("Delivering them to consumer billing (the order with a negative amount is swallowed)…")
  yield* Consumer.processBatch(
    billing,
    sent.map((m, offset) => ({
      topic: m.topic,
      partition: 0,
      offset: String(offset),
      key: m.encodedKey,
      value: m.encodedPayload,
      headers: m.headers,
      timestamp: String(Date.now())
    }))
  )
  const final = yield* Ref.get(ledger)
  yield* Console.log(`Ledger: ${JSON.stringify(Object.fromEntries(final))}`)
})

// In-memory producer backend and the validating mock schema backend; default settings (errors swallowed).
const DemoLive = Layer.mergeAll(ProducerBackend.layerTest, SchemaBackend.layerMockValidating)

program.pipe(Effect.provide(DemoLive), NodeRuntime.runMain)
