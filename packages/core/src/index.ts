/**
 * @deimos/core: the producer/consumer model, the schema and producer-backend ports, error policy and metrics.
 *
 * @since 0.1.0
 */
export * as SchemaBackend from "./SchemaBackend.js"
export * as SchemaError from "./SchemaError.js"
export * as SchemaRef from "./SchemaRef.js"
export * as Tombstone from "./Tombstone.js"
