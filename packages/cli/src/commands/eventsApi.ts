/**
 * `deimos events-api`: the events HTTP API (`EventsServer` of `@deimos/checkpoint`) over the checkpoint tables, as a
 * process of its own, until SIGINT/SIGTERM. It runs no handlers, so `POST /v1/failures/:id/retry` answers 422 here:
 * serve `EventsServer.layer({ checkpoints })` in the consumers' process to retry.
 *
 * @since 0.1.0
 */
import { Database } from "@deimos/sql"
import * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Failures from "../Failures.js"
import * as Server from "../internal/server.js"
import * as Settings from "../Settings.js"

/**
 * @since 0.1.0
 */
export const command = Command.make("events-api", Server.options, (o) =>
  Effect.gen(function*() {
    // every setting read before connecting anything: a configuration mistake is reported as one
    const { database, migrate, server } = yield* Server.settings(o)
    return yield* Server.serve("Events API", "/v1/events", server, migrate, Layer.empty).pipe(
      Effect.provide(Database.layer(database))
    )
  }).pipe(
    Settings.provide(Server.values(o), Server.flags),
    Failures.failed("events-api failed")
  )).pipe(
    Command.withDescription(
      "Serve the events HTTP API over the checkpoint tables until SIGINT/SIGTERM (GET /v1/events, /v1/failures, " +
        "DELETE /v1/failures/:id; retries need the consumers' process; OpenAPI at /docs/openapi.json). Reads " +
        "DATABASE_URL and the DATABASE_* variables, CHECKPOINT_API_PORT, CHECKPOINT_API_HOST, CHECKPOINT_API_TOKEN, " +
        "CHECKPOINT_SCHEMA, CHECKPOINT_TABLE_PREFIX, CHECKPOINT_MIGRATE, DEIMOS_PROGRESS and " +
        "DEIMOS_PROGRESS_INTERVAL."
    )
  )
