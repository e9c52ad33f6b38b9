/**
 * @deimos/broker: a development Kafka-wire-protocol broker and a Confluent-compatible Schema Registry.
 *
 * @since 0.1.0
 */
export * as KafkaBroker from "./KafkaBroker.js"
