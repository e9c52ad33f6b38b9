/**
 * `deimos-checkpoint-api`: the events HTTP API as a process of its own, over the checkpoint tables. Configured by
 * the environment: `DATABASE_URL` (and the other `Database.config` variables), the `CHECKPOINT_*` variables of
 * `EventsServer.config`, and `CHECKPOINT_MIGRATE=true` to apply the checkpoint migrations first. It has no handlers,
 * so `POST /v1/failures/:id/retry` answers 422 here: run `EventsServer.layer({ checkpoints })` in the consumers'
 * process to retry. SIGTERM or SIGINT stops it.
 *
 * @since 0.1.0
 */
import { Database, Migrations } from "@deimos/sql"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as CheckpointTables from "../CheckpointTables.js"
import * as EventsServer from "../EventsServer.js"

const Migrated = Layer.effectDiscard(Effect.gen(function*() {
  if (!(yield* Config.withDefault(Config.boolean("CHECKPOINT_MIGRATE"), false))) return
  const { tables } = yield* EventsServer.config
  const table = tables.schema === undefined ? undefined : `${tables.schema}.deimos_migrations`
  const applied = yield* Migrations.run(CheckpointTables.migrations(tables), { table })
  if (applied.length > 0) yield* Effect.logInfo(`Applied ${applied.join(", ")}`)
}))

const Server = Layer.mergeAll(
  EventsServer.layerConfig(),
  Layer.effectDiscard(Effect.flatMap(EventsServer.config, (s) => Effect.logInfo(`Events API on ${s.host}:${s.port}`)))
).pipe(Layer.provide(Migrated), Layer.provide(Database.layerConfig()))

NodeRuntime.runMain(Layer.launch(Server))
