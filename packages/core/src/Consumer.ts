/**
 * Consumers as values: a topic, a group, a schema handle, a key config, a delivery mode and a handler. The decode →
 * handler → error-policy path (`processMessage` / `processBatch`) is one function that both the Kafka runtime and
 * the test helpers call, so tests exercise the real path.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { ConsumerDefinitionError, ConsumerFatalError } from "./ConsumerError.js"
import * as DeimosConfig from "./DeimosConfig.js"
import * as ErrorPolicy from "./ErrorPolicy.js"
import * as Instrumentation from "./Instrumentation.js"
import * as KeyConfig from "./KeyConfig.js"
import * as Metrics from "./Metrics.js"
import * as SchemaBackend from "./SchemaBackend.js"
import type { SchemaError } from "./SchemaError.js"
import type * as SchemaRef from "./SchemaRef.js"
import * as TraceContext from "./TraceContext.js"

/** @since 0.1.0 */
export const TypeId: unique symbol = Symbol.for("@deimos/core/Consumer")

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
 * What a `message`/`batch` handler receives with each payload.
 *
 * @since 0.1.0
 */
export interface Metadata<K> {
  readonly consumer: string
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly key: K | null
  readonly headers: Readonly<Record<string, string>>
  readonly timestamp: Date
  /** How many times this message was retried before this attempt. */
  readonly retryCount: number
}

/**
 * What an `inlineBatch` handler receives with the payloads.
 *
 * @since 0.1.0
 */
export interface BatchMetadata<K> {
  readonly consumer: string
  readonly topic: string
  readonly partition: number
  readonly firstOffset: string
  readonly lastOffset: string
  readonly batchSize: number
  readonly keys: ReadonlyArray<K | null>
  readonly headers: ReadonlyArray<Readonly<Record<string, string>>>
  readonly retryCount: number
}

/**
 * Delivery modes (REFERENCE §2): `message` commits after each message, `batch` runs the handler per message and
 * commits per batch, `inlineBatch` hands the whole batch to `handleBatch`.
 *
 * @since 0.1.0
 */
export type Delivery = "message" | "batch" | "inlineBatch"

/**
 * @since 0.1.0
 */
export declare namespace Consumer {
  /**
   * Kafka settings per consumer (REFERENCE §2), read by the Kafka runtime.
   *
   * @since 0.1.0
   */
  export interface KafkaOptions {
    /** The runtime does not start this consumer. @default false */
    readonly disabled?: boolean | undefined
    /** Group members to run for this consumer. @default 1 */
    readonly maxConcurrency?: number | undefined
    /** Start a new group at the earliest offset. @default true */
    readonly startFromBeginning?: boolean | undefined
    readonly maxBytesPerPartition?: number | undefined
    readonly minBytes?: number | undefined
    readonly maxWaitTime?: Duration.DurationInput | undefined
    readonly sessionTimeout?: Duration.DurationInput | undefined
    readonly heartbeatInterval?: Duration.DurationInput | undefined
    readonly offsetCommitInterval?: Duration.DurationInput | undefined
    readonly offsetCommitThreshold?: number | undefined
  }

  /**
   * @since 0.1.0
   */
  export interface BaseOptions<S extends SchemaRef.Any, KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>, E>
    extends KafkaOptions
  {
    /** The topic, without the global prefix. */
    readonly topic: string
    readonly groupId: string
    readonly schema: S
    readonly keyConfig: KC
    /** @default `<groupId>:<topic>` */
    readonly name?: string | undefined
    readonly errorPolicy?:
      | ErrorPolicy.ErrorPolicy<E | SchemaError, SchemaRef.Type<S> | null, unknown>
      | undefined
  }

  /**
   * @since 0.1.0
   */
  export interface MessageOptions<S extends SchemaRef.Any, KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>, E, R>
    extends BaseOptions<S, KC, E>
  {
    /** @default "message" */
    readonly delivery?: "message" | "batch" | undefined
    readonly handle: (
      payload: SchemaRef.Type<S> | null,
      metadata: Metadata<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>
    ) => Effect.Effect<void, E, R>
  }

  /**
   * @since 0.1.0
   */
  export interface InlineBatchOptions<
    S extends SchemaRef.Any,
    KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
    E,
    R
  > extends BaseOptions<S, KC, E> {
    readonly delivery: "inlineBatch"
    readonly handleBatch: (
      payloads: ReadonlyArray<SchemaRef.Type<S> | null>,
      metadata: BatchMetadata<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>
    ) => Effect.Effect<void, E, R>
  }

  /**
   * @since 0.1.0
   */
  export type Options<S extends SchemaRef.Any, KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>, E, R> =
    | MessageOptions<S, KC, E, R>
    | InlineBatchOptions<S, KC, E, R>
}

/**
 * A consumer definition.
 *
 * @since 0.1.0
 */
export interface Consumer<A, K, E = never, R = never> extends Consumer.KafkaOptions {
  readonly [TypeId]: typeof TypeId
  readonly name: string
  readonly topic: string
  readonly groupId: string
  readonly schema: SchemaRef.SchemaRef<A, unknown>
  readonly keyConfig: KeyConfig.KeyConfig<A>
  readonly delivery: Delivery
  readonly handler:
    | {
      readonly _tag: "Message"
      readonly handle: (payload: A | null, metadata: Metadata<K>) => Effect.Effect<void, E, R>
    }
    | {
      readonly _tag: "Batch"
      readonly handleBatch: (
        payloads: ReadonlyArray<A | null>,
        metadata: BatchMetadata<K>
      ) => Effect.Effect<void, E, R>
    }
  readonly errorPolicy: ErrorPolicy.ErrorPolicy<E | SchemaError, A | null, unknown>
}

/**
 * Any consumer.
 *
 * @since 0.1.0
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Any = Consumer<any, any, any, any>

/**
 * The context a consumer's handler needs.
 *
 * @since 0.1.0
 */
export type Context<C> = C extends Consumer<infer _A, infer _K, infer _E, infer R> ? R : never

const deliveries: ReadonlyArray<string> = ["message", "batch", "inlineBatch"]

/**
 * Checks a definition: a known delivery mode with its matching handler.
 *
 * @since 0.1.0
 */
export const validate = (options: {
  readonly topic: string
  readonly groupId: string
  readonly name?: string | undefined
  readonly delivery?: string | undefined
  readonly handle?: unknown
  readonly handleBatch?: unknown
}): ConsumerDefinitionError | undefined => {
  const consumer = options.name ?? `${options.groupId}:${options.topic}`
  const delivery = options.delivery ?? "message"
  const fail = (message: string) => new ConsumerDefinitionError({ consumer, message })
  if (typeof options.topic !== "string" || options.topic.length === 0) return fail("Consumer needs a topic")
  if (typeof options.groupId !== "string" || options.groupId.length === 0) return fail("Consumer needs a groupId")
  if (!deliveries.includes(delivery)) {
    return fail(`Unknown delivery "${delivery}" for consumer ${consumer}: use "message", "batch" or "inlineBatch"`)
  }
  const hasHandle = typeof options.handle === "function"
  const hasBatch = typeof options.handleBatch === "function"
  if (hasHandle && hasBatch) {
    return fail(`Consumer ${consumer} defines both handle and handleBatch; give exactly one`)
  }
  if (delivery === "inlineBatch" && !hasBatch) {
    return fail(`Consumer ${consumer} has delivery "inlineBatch" and needs handleBatch(payloads, metadata)`)
  }
  if (delivery !== "inlineBatch" && !hasHandle) {
    return fail(
      `Consumer ${consumer} has delivery "${delivery}" and needs handle(payload, metadata)${
        hasBatch ? `; handleBatch needs delivery "inlineBatch"` : ""
      }`
    )
  }
  return undefined
}

/**
 * Defines a consumer. Throws `ConsumerDefinitionError` when the delivery mode and handler do not match (the types
 * rule that out; the check is for untyped callers).
 *
 * @since 0.1.0
 */
export const make = <
  S extends SchemaRef.Any,
  const KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
  E = never,
  R = never
>(
  options: Consumer.Options<S, KC, E, R>
): Consumer<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>, E, R> => {
  const error = validate(options as Parameters<typeof validate>[0])
  if (error !== undefined) throw error
  type A = SchemaRef.Type<S>
  type K = KeyConfig.KeyOf<A, KC>
  const { delivery, errorPolicy, groupId, keyConfig, name, schema, topic, ...kafka } = options as
    & Consumer.BaseOptions<S, KC, E>
    & { readonly delivery?: Delivery; readonly handle?: unknown; readonly handleBatch?: unknown }
  const { handle: _h, handleBatch: _b, ...kafkaOptions } = kafka
  return {
    ...kafkaOptions,
    [TypeId]: TypeId,
    name: name ?? `${groupId}:${topic}`,
    topic,
    groupId,
    schema: schema as SchemaRef.SchemaRef<A, unknown>,
    keyConfig: keyConfig as KeyConfig.KeyConfig<A>,
    delivery: delivery ?? "message",
    handler: "handleBatch" in options
      ? { _tag: "Batch", handleBatch: options.handleBatch }
      : { _tag: "Message", handle: (options as Consumer.MessageOptions<S, KC, E, R>).handle },
    errorPolicy: (errorPolicy ?? {}) as ErrorPolicy.ErrorPolicy<E | SchemaError, A | null, unknown>
  } as Consumer<A, K, E, R>
}

const textDecoder = new TextDecoder()

const headersOf = (raw: RawMessage): Readonly<Record<string, string>> => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(raw.headers)) {
    if (v !== undefined) out[k] = typeof v === "string" ? v : textDecoder.decode(v)
  }
  return out
}

/**
 * The full topic of a consumer: the global prefix and its topic.
 *
 * @since 0.1.0
 */
export const fullTopic = (consumer: Any): Effect.Effect<string> =>
  Effect.map(DeimosConfig.DeimosConfig, (config) => config.topicPrefix + consumer.topic)

/**
 * Decodes a message's key with the consumer's key config.
 *
 * @since 0.1.0
 */
export const decodeKey = (
  consumer: Any,
  raw: RawMessage
): Effect.Effect<unknown, SchemaError, SchemaBackend.SchemaBackend> => {
  if (raw.key === null) return Effect.succeed(null)
  const keySchema = KeyConfig.keySchema(consumer.keyConfig, consumer.schema)
  if (keySchema === undefined) {
    return Effect.succeed("none" in consumer.keyConfig ? null : textDecoder.decode(raw.key))
  }
  const bytes = raw.key
  return Effect.flatMap(
    SchemaBackend.SchemaBackend,
    (backend) => backend.decodeKey(bytes, { key: keySchema, topic: raw.topic })
  )
}

/**
 * Decodes a message's payload; `null` for tombstones.
 *
 * @since 0.1.0
 */
export const decodePayload = (
  consumer: Any,
  raw: RawMessage
): Effect.Effect<unknown, SchemaError, SchemaBackend.SchemaBackend> => {
  if (raw.value === null) return Effect.succeed(null)
  const bytes = raw.value
  return Effect.flatMap(
    SchemaBackend.SchemaBackend,
    (backend) => backend.decode(bytes, { schema: consumer.schema, topic: raw.topic })
  )
}

const timestampMillis = (payload: unknown): number | undefined => {
  if (typeof payload !== "object" || payload === null || !("timestamp" in payload)) return undefined
  const ts = (payload as { readonly timestamp: unknown }).timestamp
  if (ts instanceof Date) return ts.getTime()
  if (typeof ts === "number") return ts > 1e14 ? ts / 1000 : ts
  if (typeof ts === "bigint") return Number(ts) > 1e14 ? Number(ts) / 1000 : Number(ts)
  if (typeof ts === "string") {
    const parsed = Date.parse(ts)
    return Number.isNaN(parsed) ? undefined : parsed
  }
  return undefined
}

const countErrors = (topic: string, count: number) => <X, Y, Z>(self: Effect.Effect<X, Y, Z>) =>
  Effect.tapErrorCause(
    self,
    (cause) => Cause.isInterruptedOnly(cause) ? Effect.void : Metrics.countHandler("error", topic, count)
  )

/** What the policy sees of an attempt; payload and metadata are filled in once decoded. */
const attemptOf = (raw: RawMessage, context: { payload: unknown; metadata: unknown }): Attempt => ({
  topic: raw.topic,
  partition: raw.partition,
  offset: raw.offset,
  get payload() {
    return context.payload
  },
  get metadata() {
    return context.metadata
  }
})

interface Attempt {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly payload: unknown
  readonly metadata: unknown
}

/**
 * Runs `attempt` under the consumer's error policy: swallow (log, count, succeed), retry with exponential backoff
 * (the attempt number is passed in), or fail with `ConsumerFatalError`. Interruption is never caught.
 *
 * @since 0.1.0
 */
export const withErrorPolicy = <R>(
  consumer: Any,
  context: Attempt,
  attempt: (retryCount: number) => Effect.Effect<void, unknown, R>
): Effect.Effect<void, ConsumerFatalError, R> =>
  Effect.flatMap(DeimosConfig.DeimosConfig, (settings) => {
    const backoff = ErrorPolicy.backoffOf(consumer.errorPolicy, settings)
    const fatal = (cause: Cause.Cause<unknown>, retries: number, why: string) =>
      Effect.fail(
        new ConsumerFatalError({
          consumer: consumer.name,
          topic: context.topic,
          partition: context.partition,
          offset: context.offset,
          retries,
          cause,
          message:
            `Consumer ${consumer.name} stopped at ${context.topic}[${context.partition}]@${context.offset}: ${why}: ${
              Cause.pretty(cause).split("\n")[0]
            }`
        })
      )
    const loop = (retryCount: number): Effect.Effect<void, ConsumerFatalError, R> =>
      Effect.catchAllCause(attempt(retryCount), (cause) => {
        if (Cause.isInterrupted(cause)) return Effect.interrupt
        const action = ErrorPolicy.classify(consumer.errorPolicy, settings, cause, context.payload, context.metadata)
        const event = Instrumentation.emit({
          _tag: "HandlerError",
          consumer: consumer.name,
          topic: context.topic,
          partition: context.partition,
          offset: context.offset,
          action,
          error: ErrorPolicy.errorOf(cause)
        })
        const log = (message: string) =>
          Effect.logError(message, cause).pipe(Effect.annotateLogs({
            consumer: consumer.name,
            topic: context.topic,
            partition: context.partition,
            offset: context.offset,
            retryCount,
            errorTag: ErrorPolicy.tagOf(cause)
          }))
        switch (action) {
          case "swallow":
            return Effect.zipRight(event, log("Handler error swallowed; the offset will be committed"))
          case "fatal":
            return event.pipe(
              Effect.zipRight(log("Fatal handler error; stopping the consumer")),
              Effect.zipRight(fatal(cause, retryCount, "fatal error"))
            )
          case "retry": {
            if (backoff.maxRetries !== undefined && retryCount >= backoff.maxRetries) {
              return event.pipe(
                Effect.zipRight(log("Handler error out of retries; stopping the consumer")),
                Effect.zipRight(fatal(cause, retryCount, `still failing after ${retryCount} retries`))
              )
            }
            const wait = ErrorPolicy.delay(backoff, retryCount)
            return event.pipe(
              Effect.zipRight(log(`Handler error; retrying in ${Duration.format(wait)}`)),
              Effect.zipRight(Instrumentation.emit({
                _tag: "RetryHandlerError",
                consumer: consumer.name,
                topic: context.topic,
                partition: context.partition,
                offset: context.offset,
                retryCount,
                waitMillis: Duration.toMillis(wait)
              })),
              Effect.zipRight(Effect.sleep(wait)),
              Effect.zipRight(Effect.suspend(() => loop(retryCount + 1)))
            )
          }
        }
      })
    return loop(0)
  })

const spanOptions = (consumer: Any, raw: RawMessage, headers: Readonly<Record<string, string>>) => {
  const parent = TraceContext.parse(headers[TraceContext.header])
  return {
    kind: "consumer" as const,
    captureStackTrace: false,
    attributes: {
      "resource.name": consumer.name,
      consumer: consumer.name,
      topic: raw.topic,
      partition: raw.partition,
      offset: raw.offset
    },
    ...(Option.isSome(parent) ? { parent: parent.value } : {})
  }
}

/**
 * Decodes one message and runs the consumer's `handle` on it under the error policy, with the `handler` metrics
 * and a `deimos-consumer` span that continues the producer's trace. Fails only with `ConsumerFatalError`.
 *
 * @since 0.1.0
 */
export const processMessage = <A, K, E, R>(
  consumer: Consumer<A, K, E, R>,
  raw: RawMessage
): Effect.Effect<void, ConsumerFatalError, R | SchemaBackend.SchemaBackend> => {
  const handler = consumer.handler
  if (handler._tag !== "Message") {
    return processBatch(consumer, [raw])
  }
  const headers = headersOf(raw)
  const context: { payload: unknown; metadata: unknown } = { payload: null, metadata: undefined }
  const run = (retryCount: number) =>
    Effect.gen(function*() {
      yield* Metrics.countHandler("received", raw.topic)
      const key = (yield* decodeKey(consumer, raw)) as K | null
      const payload = (yield* decodePayload(consumer, raw)) as A | null
      const metadata: Metadata<K> = {
        consumer: consumer.name,
        topic: raw.topic,
        partition: raw.partition,
        offset: raw.offset,
        key,
        headers,
        timestamp: new Date(Number(raw.timestamp)),
        retryCount
      }
      context.payload = payload
      context.metadata = metadata
      const start = yield* Clock.currentTimeMillis
      const delayed = timestampMillis(payload)
      if (delayed !== undefined) yield* Metrics.timeHandler("time_delayed", raw.topic, (start - delayed) / 1000)
      yield* handler.handle(payload, metadata)
      const end = yield* Clock.currentTimeMillis
      yield* Metrics.timeHandler("consume", raw.topic, (end - start) / 1000)
      yield* Metrics.countHandler("success", raw.topic)
    }).pipe(countErrors(raw.topic, 1), Effect.withSpan("deimos-consumer", spanOptions(consumer, raw, headers)))
  return withErrorPolicy(consumer, attemptOf(raw, context), run)
}

/**
 * Processes a fetched batch of one partition: for `message`/`batch` delivery each message through
 * {@link processMessage}; for `inlineBatch` the decoded batch through `handleBatch` under the error policy.
 *
 * @since 0.1.0
 */
export const processBatch = <A, K, E, R>(
  consumer: Consumer<A, K, E, R>,
  raws: ReadonlyArray<RawMessage>
): Effect.Effect<void, ConsumerFatalError, R | SchemaBackend.SchemaBackend> => {
  if (raws.length === 0) return Effect.void
  const first = raws[0]
  const last = raws[raws.length - 1]
  const handler = consumer.handler
  const batchMetrics = <X, Y, Z>(body: Effect.Effect<X, Y, Z>) =>
    Effect.gen(function*() {
      yield* Metrics.countHandler("batch_received", first.topic)
      const start = yield* Clock.currentTimeMillis
      const result = yield* Effect.tapErrorCause(body, () => Metrics.countHandler("batch_error", first.topic))
      const end = yield* Clock.currentTimeMillis
      yield* Metrics.timeHandler("consume_batch", first.topic, (end - start) / 1000)
      yield* Metrics.countHandler("batch_success", first.topic)
      yield* Instrumentation.emit({
        _tag: "BatchConsumed",
        consumer: consumer.name,
        topic: first.topic,
        partition: first.partition,
        count: raws.length
      })
      return result
    })
  if (handler._tag === "Message") {
    return batchMetrics(Effect.forEach(raws, (raw) => processMessage(consumer, raw), { discard: true }))
  }
  const context: { payload: unknown; metadata: unknown } = { payload: [], metadata: undefined }
  const run = (retryCount: number) =>
    Effect.gen(function*() {
      yield* Metrics.countHandler("received", first.topic, raws.length)
      const keys = (yield* Effect.forEach(raws, (raw) => decodeKey(consumer, raw))) as ReadonlyArray<K | null>
      const payloads = (yield* Effect.forEach(raws, (raw) => decodePayload(consumer, raw))) as ReadonlyArray<A | null>
      const metadata: BatchMetadata<K> = {
        consumer: consumer.name,
        topic: first.topic,
        partition: first.partition,
        firstOffset: first.offset,
        lastOffset: last.offset,
        batchSize: raws.length,
        keys,
        headers: raws.map(headersOf),
        retryCount
      }
      context.payload = payloads
      context.metadata = metadata
      yield* handler.handleBatch(payloads, metadata)
      yield* Metrics.countHandler("success", first.topic, raws.length)
    }).pipe(
      countErrors(first.topic, raws.length),
      Effect.withSpan("deimos-consumer", spanOptions(consumer, first, headersOf(first)))
    )
  return batchMetrics(withErrorPolicy(consumer, attemptOf(first, context), run))
}
