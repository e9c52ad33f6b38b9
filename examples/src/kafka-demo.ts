/**
 * The zero-setup demo: starts the embedded Kafka broker, publishes orders through the Kafka producer backend, runs
 * a consumer worker that handles them (one bad order is swallowed by the error policy), reads the topic back with
 * the inline consumer, prints the lag, and shuts everything down.
 *
 * Run: `npm run demo:kafka`
 */
import { KafkaBroker } from "@deimos/broker"
import { Consumer, DeimosConfig, JsonBackend, Producer, Tombstone } from "@deimos/core"
import { Consumers, InlineConsumer, KafkaJs, KafkaProducerBackend, LagReporter } from "@deimos/kafka"
import { NodeRuntime } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import { Order } from "./shared.js"

class InvalidAmount extends Data.TaggedError("InvalidAmount")<{ readonly orderId: string }> {
  override get message() {
    return `Order ${this.orderId} has a negative amount`
  }
}

const orders = Producer.make({ topic: "orders", schema: Order, keyConfig: { field: "order_id" } })

const program = Effect.gen(function*() {
  const ledger = yield* Ref.make(new Map<string, number>())
  const handled = yield* Ref.make(0)
  const allHandled = yield* Deferred.make<void>()
  const count = Effect.flatMap(
    Ref.updateAndGet(handled, (n) => n + 1),
    (n) => n >= 5 ? Deferred.succeed(allHandled, undefined) : Effect.void
  )

  const billing = Consumer.make({
    topic: "orders",
    groupId: "billing",
    schema: Order,
    keyConfig: { field: "order_id" },
    delivery: "batch",
    maxWaitTime: "200 millis",
    // tombstones reach the handler (as Tombstone values carrying the key) instead of being skipped
    tombstones: true,
    handle: (order, metadata) =>
      Effect.ensuring(
        Tombstone.isTombstone(order)
          ? Ref.update(ledger, (m) => (m.delete(order.key), m)).pipe(
            Effect.zipRight(Console.log(`  consumed tombstone for ${order.key}: removed`))
          )
          : order.amount < 0
          ? Effect.fail(new InvalidAmount({ orderId: order.order_id }))
          : Ref.update(ledger, (m) => m.set(order.order_id, order.amount)).pipe(
            Effect.zipRight(Console.log(
              `  consumed ${order.order_id} from partition ${metadata.partition}@${metadata.offset}: ${order.customer} pays ${order.amount}`
            ))
          ),
        count
      )
  })

  yield* Console.log("Publishing 4 orders and a tombstone to topic 'orders' (Kafka backend, acks=all)…")
  yield* orders.publishList([
    { order_id: "o-1", customer: "Ada", amount: 42 },
    { order_id: "o-2", customer: "Grace", amount: 17.5 },
    { order_id: "o-3", customer: "Linus", amount: -1 },
    { order_id: "o-4", customer: "Barbara", amount: 99 }
  ])
  yield* orders.publish(Tombstone.make("o-2"))

  yield* Console.log("Running consumer group 'billing' (the order with a negative amount is logged and swallowed)…")
  const worker = yield* Effect.fork(Consumers.run([billing]))
  yield* Deferred.await(allHandled)
  yield* Fiber.interrupt(worker)
  yield* Console.log(`Ledger: ${JSON.stringify(Object.fromEntries(yield* Ref.get(ledger)))}`)

  const lag = yield* LagReporter.report([billing])
  yield* Console.log(`Lag after shutdown: ${lag.reduce((n, l) => n + l.lag, 0)} (offsets committed)`)
  const onTopic = yield* InlineConsumer.read({ topic: "orders", schema: Order, keyConfig: { field: "order_id" } })
  yield* Console.log(`Inline consumer read ${onTopic.length} messages back: ${onTopic.map((m) => m.key).join(", ")}`)
})

// an embedded broker on a free port; the kafkajs driver and the JSON schema backend on top
const Live = Layer.unwrapScoped(
  Effect.map(
    KafkaBroker.make({ port: 0, partitions: 2 }),
    (broker) => KafkaJs.layer({ brokers: [broker.broker], clientId: "demo", logLevel: "nothing" })
  )
).pipe(
  (driver) => Layer.merge(driver, KafkaProducerBackend.layer().pipe(Layer.provide(driver))),
  Layer.merge(JsonBackend.layer),
  Layer.merge(DeimosConfig.layer())
)

program.pipe(Effect.provide(Live), NodeRuntime.runMain)
