/**
 * `deimos-outbox-relay`: a relay worker process. Configured by the environment: `DATABASE_URL` (and the other
 * `Database.config` variables), `KAFKA_BROKERS` (and the other `KafkaJs.config` variables), the `OUTBOX_*` variables of
 * `OutboxRelay.config`, and `OUTBOX_MIGRATE=true` to apply the outbox migrations first. SIGTERM or SIGINT stops it
 * gracefully: the batches in flight finish and the leases are given back.
 *
 * @since 0.1.0
 */
import { Background } from "@deimos/core"
import { KafkaJs } from "@deimos/kafka"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Database from "../Database.js"
import * as Migrations from "../Migrations.js"
import * as Outbox from "../Outbox.js"
import * as OutboxRelay from "../OutboxRelay.js"

const Migrated = Layer.effectDiscard(Effect.gen(function*() {
  const migrate = yield* Config.withDefault(Config.boolean("OUTBOX_MIGRATE"), false)
  if (!migrate) return
  const options = yield* OutboxRelay.config
  const table = options.schema === undefined ? undefined : `${options.schema}.deimos_migrations`
  const applied = yield* Migrations.run(Outbox.migrations(options), { table })
  if (applied.length > 0) yield* Effect.logInfo(`Applied ${applied.join(", ")}`)
}))

// the migrations, when asked for, before the relay starts
const Relay = OutboxRelay.layerConfig().pipe(
  Layer.provide(Migrated),
  Layer.provide(Layer.mergeAll(Database.layerConfig(), KafkaJs.layerConfig()))
)

// this process is a relay worker: its heap is tuned as one
NodeRuntime.runMain(Effect.zipRight(OutboxRelay.tuneWorkerHeap, Background.launch(Relay)))
