/**
 * @deimos/avro: Avro schema backends (local, Schema Registry, validation), key schemas, coercion, codegen.
 *
 * @since 0.1.0
 */
export * as AvroBackend from "./AvroBackend.js"
export * as Codegen from "./Codegen.js"
