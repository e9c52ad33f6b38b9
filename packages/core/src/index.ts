/**
 * @deimos/core: the producer/consumer model, the schema and producer-backend ports, error policy and metrics.
 *
 * @since 0.1.0
 */
export * as Background from "./Background.js"
export * as Consumer from "./Consumer.js"
export * as ConsumerError from "./ConsumerError.js"
export * as ConsumerProcessor from "./ConsumerProcessor.js"
export * as DeadLetter from "./DeadLetter.js"
export * as DeimosConfig from "./DeimosConfig.js"
export * as ErrorPolicy from "./ErrorPolicy.js"
export * as Instrumentation from "./Instrumentation.js"
export * as JsonBackend from "./JsonBackend.js"
export * as KeyConfig from "./KeyConfig.js"
export * as Metrics from "./Metrics.js"
export * as MockBackend from "./MockBackend.js"
export * as Producer from "./Producer.js"
export * as ProducerBackend from "./ProducerBackend.js"
export * as ProducerError from "./ProducerError.js"
export * as SchemaBackend from "./SchemaBackend.js"
export * as SchemaError from "./SchemaError.js"
export * as SchemaRef from "./SchemaRef.js"
export * as SentMessages from "./SentMessages.js"
export * as Tombstone from "./Tombstone.js"
export * as TraceContext from "./TraceContext.js"

export {
  /**
   * The error a worker stops with when a handler error is fatal: match on it at the top of a worker.
   *
   * @since 0.1.0
   */
  ConsumerFatalError
} from "./ConsumerError.js"
