/**
 * Consume messages through the real decode → handler → error-policy path without Kafka (REFERENCE §11).
 *
 * @since 0.1.0
 */
import { Consumer, type ConsumerError, DeimosConfig, KeyConfig, SchemaBackend, SchemaError } from "@deimos/core"
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

const encoder = new TextEncoder()

const keyFor = (
  consumer: Consumer.Any,
  payload: unknown,
  given: unknown,
  topic: string
): Effect.Effect<unknown, SchemaError.SchemaError> => {
  if (given !== undefined) return Effect.succeed(given)
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
 * Encodes a payload and key as a producer would and wraps them in a raw message, as fetched from Kafka.
 *
 * @since 0.1.0
 */
export const rawMessage = (
  consumer: Consumer.Any,
  payload: unknown,
  options: MessageOptions<unknown> = {}
): Effect.Effect<Consumer.RawMessage, SchemaError.SchemaError, SchemaBackend.SchemaBackend> =>
  Effect.gen(function*() {
    const backend = yield* SchemaBackend.SchemaBackend
    const config = yield* DeimosConfig.DeimosConfig
    const topic = config.topicPrefix + consumer.topic
    const key = yield* keyFor(consumer, payload, options.key, topic)
    const keySchema = KeyConfig.keySchema(consumer.keyConfig, consumer.schema)
    const encodedKey = key === null || key === undefined
      ? null
      : keySchema === undefined
      ? encoder.encode(String(key))
      : yield* backend.encodeKey(key, { key: keySchema, topic })
    const value = payload === null
      ? null
      : yield* backend.encode(yield* backend.coerce(payload, consumer.schema), { schema: consumer.schema, topic })
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
 * Runs one payload (or `null` for a tombstone) through the consumer's real path. Fails with the encoding
 * `SchemaError` when the payload is invalid, or with `ConsumerFatalError` when the handler fails under unit-test
 * settings.
 *
 * @since 0.1.0
 */
export const testConsumeMessage = <A, K, E, R>(
  consumer: Consumer.Consumer<A, K, E, R>,
  payload: A | null,
  options: MessageOptions<K> = {}
): Effect.Effect<
  void,
  SchemaError.SchemaError | ConsumerError.ConsumerFatalError,
  R | SchemaBackend.SchemaBackend
> => Effect.flatMap(rawMessage(consumer, payload, options), (raw) => Consumer.processMessage(consumer, raw))

/**
 * Runs payloads as one batch of partition 0 through the consumer's real path (per message for `message`/`batch`
 * delivery, `handleBatch` for `inlineBatch`).
 *
 * @since 0.1.0
 */
export const testConsumeBatch = <A, K, E, R>(
  consumer: Consumer.Consumer<A, K, E, R>,
  payloads: ReadonlyArray<A | null>,
  options: { readonly keys?: ReadonlyArray<K> | undefined; readonly partition?: number | undefined } = {}
): Effect.Effect<
  void,
  SchemaError.SchemaError | ConsumerError.ConsumerFatalError,
  R | SchemaBackend.SchemaBackend
> =>
  Effect.forEach(payloads, (payload, i) =>
    rawMessage(consumer, payload, {
      key: options.keys?.[i],
      partition: options.partition,
      offset: i
    })).pipe(Effect.flatMap((raws) => Consumer.processBatch(consumer, raws)))

/**
 * Expects the payload to be rejected by the schema backend before reaching the handler; succeeds with the
 * validation error, fails when the payload was accepted.
 *
 * @since 0.1.0
 */
export const testConsumeInvalidMessage = <A, K, E, R>(
  consumer: Consumer.Consumer<A, K, E, R>,
  payload: unknown,
  options: MessageOptions<K> = {}
): Effect.Effect<SchemaError.SchemaError, Error, R | SchemaBackend.SchemaBackend> =>
  rawMessage(consumer, payload, options).pipe(
    Effect.flatMap(() =>
      Effect.fail(
        new Error(`Expected consumer ${consumer.name} to reject ${JSON.stringify(payload)}, but it was valid`)
      )
    ),
    Effect.catchTag("SchemaError", (error) => Effect.succeed(error))
  )
