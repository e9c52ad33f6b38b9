/**
 * @deimos/checkpoint: idempotent consumption with an event log claimed in the handler's own transaction, a failures
 * table with retry, a retention sweeper, and the events HTTP API.
 *
 * @since 0.1.0
 */
export * as Checkpoint from "./Checkpoint.js"
export * as CheckpointError from "./CheckpointError.js"
export * as CheckpointInstrumentation from "./CheckpointInstrumentation.js"
export * as CheckpointTables from "./CheckpointTables.js"
export * as EventsApi from "./EventsApi.js"
export * as EventsServer from "./EventsServer.js"
