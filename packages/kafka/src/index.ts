/**
 * @deimos/kafka: the Kafka driver port and its kafkajs adapter, Kafka producer backends, consumer workers, lag
 * reporter and inline consumer.
 *
 * @since 0.1.0
 */
export * as Consumers from "./Consumers.js"
export * as DeadLetter from "./DeadLetter.js"
export * as InlineConsumer from "./InlineConsumer.js"
export * as KafkaDriver from "./KafkaDriver.js"
export * as KafkaError from "./KafkaError.js"
export * as KafkaJs from "./KafkaJs.js"
export * as KafkaProducerBackend from "./KafkaProducerBackend.js"
export * as LagReporter from "./LagReporter.js"
