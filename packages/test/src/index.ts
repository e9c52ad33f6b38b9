/**
 * @deimos/test: the test layer, consuming through the real path without Kafka, and assertions on sent messages.
 *
 * @since 0.1.0
 */
export * as Expect from "./Expect.js"
export * as TestConsume from "./TestConsume.js"
export * as TestLayer from "./TestLayer.js"

export { clearSent, expectNotSent, expectSent, installMatchers, sentTo } from "./Expect.js"
export * as SchemaBackendSuite from "./SchemaBackendSuite.js"
export { testConsumeBatch, testConsumeInvalidMessage, testConsumeMessage } from "./TestConsume.js"
