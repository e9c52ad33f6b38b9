/**
 * @deimos/core: the producer/consumer model, the schema and producer-backend ports, error policy and metrics.
 *
 * @since 0.1.0
 */
export * as Consumer from "./Consumer.js"
export * as ConsumerError from "./ConsumerError.js"
export * as DeimosConfig from "./DeimosConfig.js"
export * as Eager from "./Eager.js"
export * as ErrorPolicy from "./ErrorPolicy.js"
export * as Instrumentation from "./Instrumentation.js"
export * as KeyConfig from "./KeyConfig.js"
export * as Metrics from "./Metrics.js"
export * as Producer from "./Producer.js"
export * as ProducerBackend from "./ProducerBackend.js"
export * as ProducerError from "./ProducerError.js"
export * as SchemaBackend from "./SchemaBackend.js"
export * as SchemaError from "./SchemaError.js"
export * as SchemaRef from "./SchemaRef.js"
export * as SentMessages from "./SentMessages.js"
export * as Tombstone from "./Tombstone.js"
export * as TraceContext from "./TraceContext.js"
