/**
 * A poller worker: publishes the rows of an `orders` table to Kafka as they change. The time-based poller reads
 * the rows whose `updated_at` moved past its cursor every 5 seconds, in batches ordered by (updated_at, id), and
 * saves its cursor after each batch; run two of these and the lease in `poll_info` keeps them from publishing twice.
 * SIGINT/SIGTERM stop it between batches (a batch in flight is rolled back and sent again by the next run).
 *
 * Run against Postgres and a broker (e.g. `npm run broker`):
 * `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test KAFKA_BROKERS=127.0.0.1:9092 \
 *   node --import tsx examples/src/poller-worker.ts`
 * then `insert into orders (order_id, customer, amount) values ('o-1', 'c-1', 10)` and watch the `orders` topic.
 */
import { Background, DeimosConfig, JsonBackend, Producer } from "@deimos/core"
import { KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { Database, Migrations, Poller, RecordProducer } from "@deimos/sql"
import { NodeRuntime } from "@effect/platform-node"
import { sql } from "drizzle-orm"
import { bigserial, integer, pgTable, text, timestamp } from "drizzle-orm/pg-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Order } from "./shared.js"

const orders = pgTable("orders", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  order_id: text("order_id").notNull(),
  customer: text("customer").notNull(),
  amount: integer("amount").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow()
})

// the payload is the schema's fields of each row (order_id, customer, amount)
const records = RecordProducer.make({
  producer: Producer.make({ topic: "orders", schema: Order, keyConfig: { field: "order_id" } }),
  table: orders
})

const setup = Effect.gen(function*() {
  yield* Migrations.run(Poller.migrations())
  yield* Database.execute(sql`create table if not exists orders (
    id bigserial primary key,
    order_id text not null,
    customer text not null,
    amount integer not null,
    updated_at timestamptz not null default now()
  )`)
})

const Pollers = Poller.layer([{
  name: "orders",
  producers: [records],
  mode: { mode: "time", timestampColumn: "updated_at", delayTime: "2 seconds" },
  runEvery: "5 seconds"
}])

const Services = Layer.mergeAll(
  KafkaProducerBackend.layer().pipe(Layer.provide(KafkaJs.layerConfig())),
  JsonBackend.layer,
  DeimosConfig.layerConfig()
).pipe(Layer.provideMerge(Database.layerConfig()))

setup.pipe(
  Effect.zipRight(Background.launch(Pollers)),
  Effect.provide(Services),
  NodeRuntime.runMain
)
