/**
 * @deimos/test: the test layer, consuming through the real path without Kafka, assertions on sent messages, and the
 * conformance suites of the ports (`SchemaBackendSuite`, `ProducerBackendSuite`; the Kafka driver's is the
 * `@deimos/test/KafkaDriverSuite` module, which needs `@deimos/kafka` and `@deimos/broker`).
 *
 * @since 0.1.0
 */
export * as Expect from "./Expect.js"
export * as TestConsume from "./TestConsume.js"
export * as TestLayer from "./TestLayer.js"

export { clearSent, expectNotSent, expectSent, installMatchers, sentTo } from "./Expect.js"
export * as ProducerBackendSuite from "./ProducerBackendSuite.js"
export * as SchemaBackendSuite from "./SchemaBackendSuite.js"
export { testConsumeBatch, testConsumeInvalidMessage, testConsumeMessage } from "./TestConsume.js"
