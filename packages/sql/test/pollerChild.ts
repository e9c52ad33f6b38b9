// A poller process for pollerFaults.test.ts to SIGKILL: polls the orders table POLLER_TABLE of POLLER_SCHEMA to
// POLLER_TOPIC on the broker at KAFKA_BROKER, slowly (each batch waits 50 ms after its send), until killed.
import { KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { Database, Poller } from "@deimos/sql"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { url } from "./outboxFixtures.js"
import { Json, orderRecords, ordersTable } from "./pollerFixtures.js"

const env = (name: string) => process.env[name] ?? ""
const schema = env("POLLER_SCHEMA")
const table = env("POLLER_TABLE")

const records = orderRecords(
  schema,
  env("POLLER_TOPIC"),
  { postProcess: () => Effect.sleep("50 millis") },
  ordersTable(schema, table)
)

Poller.run({
  name: table,
  schema,
  producers: [records],
  mode: { mode: "time", delayTime: 0, snapshotGuard: "tableWriters" },
  batchSize: 10,
  runEvery: "100 millis",
  workerId: "doomed",
  leaseTimeout: "2 seconds"
}).pipe(
  Effect.provide(
    Layer.mergeAll(
      KafkaProducerBackend.layer().pipe(
        Layer.provide(KafkaJs.layer({ brokers: [env("KAFKA_BROKER")], clientId: "poller-child", logLevel: "nothing" }))
      ),
      Json,
      Database.layer({ url, max: 2 })
    )
  ),
  Effect.runFork
)
