/**
 * @deimos/broker: a development Kafka-wire-protocol broker and a Confluent-compatible Schema Registry.
 *
 * @since 0.1.0
 */
export * as DevCertificates from "./DevCertificates.js"
export * as DevCluster from "./DevCluster.js"
export * as KafkaBroker from "./KafkaBroker.js"
export * as SchemaRegistry from "./SchemaRegistry.js"
export * as SchemaRegistryError from "./SchemaRegistryError.js"
