// The README's curl session: seeds the schema `checkpoint_demo` of the test database through a checkpoint (three
// orders acknowledged, one duplicate, one failure) and serves the events API on 127.0.0.1:9393 with the token
// `s3cret`. Run: `npx tsx packages/checkpoint/test/demoServer.ts`; stop with Ctrl-C (the schema stays).
import { Checkpoint, CheckpointTables, EventsServer } from "@deimos/checkpoint"
import { SchemaRef } from "@deimos/core"
import { Database, Migrations } from "@deimos/sql"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { sql } from "drizzle-orm"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

class PaymentDeclined extends Data.TaggedError("PaymentDeclined")<{ readonly message: string }> {}

const Order = SchemaRef.fromSchema(Schema.Struct({ order_id: Schema.String, amount: Schema.Number }), {
  name: "Order",
  namespace: "demo"
})
const schema = "checkpoint_demo"

// the payment provider declines negative amounts the first two times it is asked
let declines = 0
const orders = Checkpoint.make({
  topic: "orders",
  groupId: "billing",
  schema: Order,
  keyConfig: { field: "order_id" },
  tables: { schema },
  maxRetries: 0,
  handle: (order) =>
    order.amount < 0 && ++declines <= 2
      ? Effect.fail(new PaymentDeclined({ message: `amount ${order.amount} declined` }))
      : Effect.succeed(Checkpoint.ack({
        entityId: order.order_id,
        eventTime: new Date(Date.UTC(2026, 11, 1, 12, Math.abs(order.amount))),
        eventType: "order_placed",
        eventVersion: "1"
      }))
})

const metadata = (offset: number) => ({
  consumer: orders.name,
  topic: "orders",
  partition: 0,
  offset: String(offset),
  key: null,
  headers: {},
  timestamp: new Date(Date.UTC(2026, 11, 1, 12)),
  retryCount: 0
})

const Seeded = Layer.effectDiscard(Effect.gen(function*() {
  yield* Database.execute(sql.raw(`drop schema if exists ${schema} cascade`))
  yield* Migrations.run(CheckpointTables.migrations({ schema }), { table: `${schema}.deimos_migrations` })
  yield* orders.consume({ order_id: "o-1", amount: 42 }, metadata(0))
  yield* orders.consume({ order_id: "o-2", amount: 7 }, metadata(1))
  yield* orders.consume({ order_id: "o-1", amount: 42 }, metadata(2))
  yield* orders.consume({ order_id: "o-3", amount: -5 }, metadata(3))
  yield* orders.consume({ order_id: "o-4", amount: 3 }, metadata(4))
}))

const Server = EventsServer.layer({
  port: 9393,
  host: "127.0.0.1",
  token: Redacted.make("s3cret"),
  tables: { schema },
  checkpoints: [orders]
}).pipe(
  Layer.provide(Seeded),
  Layer.provide(Database.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:5432/test") }))
)

NodeRuntime.runMain(Layer.launch(Server))
