/**
 * What a runtime calls to handle messages: a consumer definition bound once to the schema backend, the settings
 * and the codecs of its topic (`make`), then `message(raw)` / `batch(raws)` per fetched message or batch — the one
 * path from raw bytes to the handler: decode key and payload, run the handler in a `deimos-consumer` span that
 * continues the producer's trace, count and time it (`handler{status}`, `handler{time}`), apply the error policy.
 * The Kafka runtime and the test helpers both go through it, so a unit test exercises what production runs.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Consumer from "./Consumer.js"
import type { ConsumerFatalError } from "./ConsumerError.js"
import * as DeimosConfig from "./DeimosConfig.js"
import * as internal from "./internal/processor.js"
import type * as KeyConfig from "./KeyConfig.js"
import * as ProducerBackend from "./ProducerBackend.js"
import * as SchemaBackend from "./SchemaBackend.js"
import type { SchemaError } from "./SchemaError.js"
import type * as SchemaRef from "./SchemaRef.js"

/**
 * A message as fetched from Kafka, in the toolkit's own types.
 *
 * @since 0.1.0
 */
export interface RawMessage {
  readonly topic: string
  readonly partition: number
  /** Offset as a decimal string (Kafka offsets are 64-bit). */
  readonly offset: string
  readonly key: Uint8Array | null
  /** `null` for tombstones. */
  readonly value: Uint8Array | null
  readonly headers: Readonly<Record<string, string | Uint8Array | undefined>>
  /** Epoch milliseconds as a decimal string. */
  readonly timestamp: string
}

/**
 * A consumer bound to what handling its messages needs, made once per group member. Each message (or each
 * `inlineBatch`) is one attempt under the error policy. It fails only with `ConsumerFatalError`: retries happen
 * inside, so a runtime commits after it succeeds and never otherwise.
 *
 * @since 0.1.0
 */
export interface Processor<R> {
  readonly consumer: Consumer.Any
  /** The full topic (prefix applied). */
  readonly topic: string
  /** One message (`message`/`batch` delivery; an `inlineBatch` handler gets a batch of one). */
  readonly message: (raw: RawMessage) => Effect.Effect<void, ConsumerFatalError, R>
  /** One fetched batch of one partition: `handleBatch` for `inlineBatch`, else each message; with batch metrics. */
  readonly batch: (raws: ReadonlyArray<RawMessage>) => Effect.Effect<void, ConsumerFatalError, R>
  /**
   * The batch metrics (`handler{status:batch_received|batch_success|batch_error}`, `handler{time:consume_batch}`)
   * and the `BatchConsumed` event around `body`, for a runtime that drives a `batch` delivery message by message.
   */
  readonly measureBatch: <X, Y, Z>(
    first: RawMessage,
    count: number,
    body: Effect.Effect<X, Y, Z>
  ) => Effect.Effect<X, Y, Z>
}

/**
 * The full topic of a consumer: the settings' prefix and its topic.
 *
 * @since 0.1.0
 */
export const topicOf = (consumer: {
  readonly topic: string
}): Effect.Effect<string, never, DeimosConfig.DeimosConfig> =>
  Effect.map(DeimosConfig.DeimosConfig, (settings) => settings.topicPrefix + consumer.topic)

/**
 * A decoder of a topic's messages by a schema handle and key config (what a consumer would receive, without a
 * handler): the key, then the payload, `null` for a null value; a writer schema not met yet is fetched first.
 *
 * @since 0.1.0
 */
export const decoder = (source: {
  readonly topic: string
  readonly schema: SchemaRef.Any
  readonly keyConfig: KeyConfig.KeyConfig<Record<string, unknown>>
}): Effect.Effect<
  (raw: RawMessage) => Effect.Effect<{ readonly key: unknown; readonly payload: unknown }, SchemaError>,
  SchemaError,
  SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig
> =>
  Effect.gen(function*() {
    const settings = yield* DeimosConfig.DeimosConfig
    const backend = yield* SchemaBackend.SchemaBackend
    return yield* internal.decoder(source, backend, settings.topicPrefix + source.topic)
  })

/**
 * Binds a consumer: resolves its codecs for its full topic (a schema that cannot be found fails here, before any
 * message is read). Dead letters go through the `ProducerBackend` in context, when there is one.
 *
 * @since 0.1.0
 */
export const make = <A, K, E, R, P>(
  consumer: Consumer.Consumer<A, K, E, R, P>
): Effect.Effect<Processor<R>, SchemaError, SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig> =>
  Effect.gen(function*() {
    const settings = yield* DeimosConfig.DeimosConfig
    const backend = yield* SchemaBackend.SchemaBackend
    const producerBackend = yield* Effect.serviceOption(ProducerBackend.ProducerBackend)
    return yield* internal.make(consumer, {
      settings,
      backend,
      producerBackend: producerBackend._tag === "Some" ? producerBackend.value : undefined
    })
  })

/**
 * Binds the consumer and handles one message; for a runtime that handles many, bind once with {@link make}.
 *
 * @since 0.1.0
 */
export const processMessage = <A, K, E, R, P>(
  consumer: Consumer.Consumer<A, K, E, R, P>,
  raw: RawMessage
): Effect.Effect<
  void,
  ConsumerFatalError | SchemaError,
  R | SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig
> => Effect.flatMap(make(consumer), (processor) => processor.message(raw))

/**
 * Binds the consumer and handles one fetched batch of one partition.
 *
 * @since 0.1.0
 */
export const processBatch = <A, K, E, R, P>(
  consumer: Consumer.Consumer<A, K, E, R, P>,
  raws: ReadonlyArray<RawMessage>
): Effect.Effect<
  void,
  ConsumerFatalError | SchemaError,
  R | SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig
> => Effect.flatMap(make(consumer), (processor) => processor.batch(raws))
