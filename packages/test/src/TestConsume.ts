/**
 * Consume messages through the real decode → handler → error-policy path without Kafka: the payload and key are
 * encoded as a producer would encode them, and `ConsumerProcessor` handles the raw message as the Kafka runtime
 * does.
 *
 * @since 0.1.0
 */
import type { DeimosConfig } from "@deimos/core"
import {
  type Consumer,
  type ConsumerError,
  ConsumerProcessor,
  KeyConfig,
  SchemaBackend,
  SchemaError,
  Tombstone
} from "@deimos/core"
import * as Effect from "effect/Effect"

/**
 * @since 0.1.0
 */
export interface MessageOptions<K> {
  /** The key; generated from the key config when not given (the key field, or a UUID for plain keys). */
  readonly key?: K | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly partition?: number | undefined
  readonly offset?: number | undefined
}

const keyFor = (
  consumer: Consumer.Any,
  payload: unknown,
  given: unknown,
  topic: string
): Effect.Effect<unknown, SchemaError.SchemaError> => {
  if (given !== undefined) return Effect.succeed(given)
  if (Tombstone.isTombstone(payload)) return Effect.succeed(payload.key)
  const config = consumer.keyConfig as KeyConfig.KeyConfig<Record<string, unknown>>
  if ("none" in config) return Effect.succeed(null)
  if ("field" in config) {
    return Effect.succeed(
      typeof payload === "object" && payload !== null ? (payload as Record<string, unknown>)[config.field] : null
    )
  }
  if ("plain" in config) return Effect.succeed(globalThis.crypto.randomUUID())
  return Effect.fail(
    new SchemaError.SchemaError({
      reason: "Key",
      topic,
      schema: config.schema.fullName,
      message:
        `Consumer ${consumer.name} uses keyConfig { schema: ${config.schema.fullName} }: pass { key } to testConsumeMessage`
    })
  )
}

/**
 * Encodes a payload (or a `Tombstone`, sent with a null value) and its key as a producer would, and wraps them in a
 * raw message as fetched from Kafka.
 *
 * @since 0.1.0
 */
export const rawMessage = (
  consumer: Consumer.Any,
  payload: unknown,
  options: MessageOptions<unknown> = {}
): Effect.Effect<
  ConsumerProcessor.RawMessage,
  SchemaError.SchemaError,
  SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig
> =>
  Effect.gen(function*() {
    const backend = yield* SchemaBackend.SchemaBackend
    const topic = yield* ConsumerProcessor.topicOf(consumer)
    const key = yield* keyFor(consumer, payload, options.key, topic)
    const keySchema = KeyConfig.keySchema(consumer.keyConfig, consumer.schema)
    let encodedKey: Uint8Array | null = null
    if (key !== null && key !== undefined) {
      if (keySchema === undefined) {
        encodedKey = Buffer.from(String(key))
      } else {
        const keyCodec = yield* backend.keyCodec(keySchema, topic, "write")
        encodedKey = yield* keyCodec.encode(keyCodec.coerce(key))
      }
    }
    let value: Uint8Array | null = null
    if (payload !== null && !Tombstone.isTombstone(payload)) {
      const codec = yield* backend.codec(consumer.schema, topic, "write")
      value = yield* codec.encode(codec.coerce(payload))
    }
    return {
      topic,
      partition: options.partition ?? 0,
      offset: String(options.offset ?? 0),
      key: encodedKey,
      value,
      headers: options.headers ?? {},
      timestamp: String(Date.now())
    }
  })

/**
 * Runs one payload (or a `Tombstone.make(key)`) through the consumer's real path. Fails with the encoding
 * `SchemaError` when the payload is invalid, or with `ConsumerFatalError` when the handler fails under unit-test
 * settings.
 *
 * @since 0.1.0
 */
export const testConsumeMessage = <A, K, E, R, P>(
  consumer: Consumer.Consumer<A, K, E, R, P>,
  payload: A | Tombstone.Tombstone<K>,
  options: MessageOptions<K> = {}
): Effect.Effect<
  void,
  SchemaError.SchemaError | ConsumerError.ConsumerFatalError,
  R | SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig
> => Effect.flatMap(rawMessage(consumer, payload, options), (raw) => ConsumerProcessor.processMessage(consumer, raw))

/**
 * Runs payloads as one batch of one partition through the consumer's real path (per message for `message`/`batch`
 * delivery, `handleBatch` for `inlineBatch`).
 *
 * @since 0.1.0
 */
export const testConsumeBatch = <A, K, E, R, P>(
  consumer: Consumer.Consumer<A, K, E, R, P>,
  payloads: ReadonlyArray<A | Tombstone.Tombstone<K>>,
  options: { readonly keys?: ReadonlyArray<K> | undefined; readonly partition?: number | undefined } = {}
): Effect.Effect<
  void,
  SchemaError.SchemaError | ConsumerError.ConsumerFatalError,
  R | SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig
> =>
  Effect.forEach(payloads, (payload, i) =>
    rawMessage(consumer, payload, {
      key: options.keys?.[i],
      partition: options.partition,
      offset: i
    })).pipe(Effect.flatMap((raws) => ConsumerProcessor.processBatch(consumer, raws)))

/**
 * Expects the payload to be rejected by the schema backend before reaching the handler; succeeds with the
 * validation error, fails when the payload was accepted.
 *
 * @since 0.1.0
 */
export const testConsumeInvalidMessage = <A, K, E, R, P>(
  consumer: Consumer.Consumer<A, K, E, R, P>,
  payload: unknown,
  options: MessageOptions<K> = {}
): Effect.Effect<SchemaError.SchemaError, Error, SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig> =>
  rawMessage(consumer, payload, options).pipe(
    Effect.flatMap(() =>
      Effect.fail(
        new Error(`Expected consumer ${consumer.name} to reject ${JSON.stringify(payload)}, but it was valid`)
      )
    ),
    Effect.catchTag("SchemaError", (error) => Effect.succeed(error))
  )
