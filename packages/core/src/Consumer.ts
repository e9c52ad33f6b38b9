/**
 * Consumers as values: a topic, a group, a schema handle, a key config, a delivery mode and a handler. The decode →
 * handler → error-policy path (`processMessage` / `processBatch`) is one function that both the Kafka runtime and
 * the test helpers call, so tests exercise the real path.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as EffectContext from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import type * as Tracer from "effect/Tracer"
import { ConsumerDefinitionError, ConsumerFatalError } from "./ConsumerError.js"
import * as DeimosConfig from "./DeimosConfig.js"
import * as ErrorPolicy from "./ErrorPolicy.js"
import * as Instrumentation from "./Instrumentation.js"
import * as Utf8 from "./internal/utf8.js"
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
  /** How many payloads the handler gets: the batch's messages that could be decoded. */
  readonly batchSize: number
  /** The offset of each payload (a message that cannot be decoded is not among them). */
  readonly offsets: ReadonlyArray<string>
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
    /** How long the broker may hold a fetch for data; a stop waits for the fetch in flight. @default 500 millis */
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

const noHeaders: Readonly<Record<string, string>> = Object.freeze({})

const headersOf = (raw: RawMessage): Readonly<Record<string, string>> => {
  let out: Record<string, string> | undefined
  for (const k in raw.headers) {
    const v = raw.headers[k]
    if (v === undefined) continue
    out ??= {}
    out[k] = typeof v === "string" ? v : Utf8.decodeLossy(v)
  }
  return out ?? noHeaders
}

/**
 * The full topic of a consumer: the global prefix and its topic.
 *
 * @since 0.1.0
 */
export const fullTopic = (consumer: Any): Effect.Effect<string> =>
  Effect.map(DeimosConfig.DeimosConfig, (config) => config.topicPrefix + consumer.topic)

/** Options built once per topic (a consumer reads one topic: the last one is kept at hand). */
const perTopic = <O>(make: (topic: string) => O) => {
  const built = new Map<string, O>()
  let lastTopic: string | undefined
  let last: O | undefined
  return (topic: string): O => {
    if (topic === lastTopic) return last!
    let options = built.get(topic)
    if (options === undefined) built.set(topic, options = make(topic))
    lastTopic = topic
    return last = options
  }
}

const keyDecoder = (consumer: Any, backend: SchemaBackend.SchemaBackend.Service) => {
  const keySchema = KeyConfig.keySchema(consumer.keyConfig, consumer.schema)
  const unkeyed = "none" in consumer.keyConfig
  const optionsOf = perTopic((topic): SchemaBackend.KeyOptions => ({ key: keySchema!, topic }))
  return (raw: RawMessage): Effect.Effect<unknown, SchemaError> => {
    if (raw.key === null) return Exit.succeed(null)
    if (keySchema === undefined) return Exit.succeed(unkeyed ? null : Utf8.decodeLossy(raw.key))
    return backend.decodeKey(raw.key, optionsOf(raw.topic))
  }
}

const payloadDecoder = (consumer: Any, backend: SchemaBackend.SchemaBackend.Service) => {
  const optionsOf = perTopic((topic): SchemaBackend.CodecOptions => ({ schema: consumer.schema, topic }))
  return (raw: RawMessage): Effect.Effect<unknown, SchemaError> =>
    raw.value === null ? Exit.succeed(null) : backend.decode(raw.value, optionsOf(raw.topic))
}

/**
 * Decodes a message's key with the consumer's key config.
 *
 * @since 0.1.0
 */
export const decodeKey = (
  consumer: Any,
  raw: RawMessage
): Effect.Effect<unknown, SchemaError, SchemaBackend.SchemaBackend> =>
  Effect.flatMap(SchemaBackend.SchemaBackend, (backend) => keyDecoder(consumer, backend)(raw))

/**
 * Decodes a message's payload; `null` for tombstones.
 *
 * @since 0.1.0
 */
export const decodePayload = (
  consumer: Any,
  raw: RawMessage
): Effect.Effect<unknown, SchemaError, SchemaBackend.SchemaBackend> =>
  Effect.flatMap(SchemaBackend.SchemaBackend, (backend) => payloadDecoder(consumer, backend)(raw))

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

/**
 * Completes when the runtime stops the consumer. The error policy races each retry backoff against it: a message
 * waiting to be retried when the scope closes is given up at once (interrupted, left uncommitted, delivered again
 * after the restart) instead of holding the shutdown for its whole grace period. A `Context.Reference`: by default
 * it never completes (tests, and runtimes that do not stop).
 *
 * @since 0.1.0
 * @category tags
 */
export class Stopping extends EffectContext.Reference<Stopping>()("@deimos/core/Consumer/Stopping", {
  defaultValue: (): Effect.Effect<void> => Effect.never
}) {}

/**
 * What the error policy sees of an attempt; `payload` and `metadata` are filled in once decoded.
 *
 * @since 0.1.0
 */
export interface Attempt {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly payload: unknown
  readonly metadata: unknown
}

interface MutableAttempt {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  payload: unknown
  metadata: unknown
}

/** The attempt at a message (or at a batch, from its first message); metadata is filled in once known. */
const attemptAt = (raw: RawMessage, payload: unknown): MutableAttempt => ({
  topic: raw.topic,
  partition: raw.partition,
  offset: raw.offset,
  payload,
  metadata: undefined
})

/** The error policy of a consumer with its settings resolved: `run(context, attempt)` as `withErrorPolicy`. */
const policyOf = (consumer: Any, settings: DeimosConfig.Settings) => {
  const backoff = ErrorPolicy.backoffOf(consumer.errorPolicy, settings)
  const fatal = (context: Attempt, cause: Cause.Cause<unknown>, retries: number, why: string) =>
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
  const onFailure = <R>(
    context: Attempt,
    attempt: (retryCount: number) => Effect.Effect<void, unknown, R>,
    retryCount: number,
    cause: Cause.Cause<unknown>
  ): Effect.Effect<void, ConsumerFatalError, R> => {
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
          Effect.zipRight(fatal(context, cause, retryCount, "fatal error"))
        )
      case "retry": {
        if (backoff.maxRetries !== undefined && retryCount >= backoff.maxRetries) {
          return event.pipe(
            Effect.zipRight(log("Handler error out of retries; stopping the consumer")),
            Effect.zipRight(fatal(context, cause, retryCount, `still failing after ${retryCount} retries`))
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
          Effect.zipRight(Effect.raceFirst(
            Effect.sleep(wait),
            Effect.flatMap(Stopping, (stopping) => Effect.zipRight(stopping, Effect.interrupt))
          )),
          Effect.zipRight(Effect.suspend(() => loop(context, attempt, retryCount + 1)))
        )
      }
    }
  }
  const loop = <R>(
    context: Attempt,
    attempt: (retryCount: number) => Effect.Effect<void, unknown, R>,
    retryCount: number
  ): Effect.Effect<void, ConsumerFatalError, R> =>
    Effect.catchAllCause(attempt(retryCount), (cause) => onFailure(context, attempt, retryCount, cause))
  return <R>(
    context: Attempt,
    attempt: (retryCount: number) => Effect.Effect<void, unknown, R>
  ): Effect.Effect<void, ConsumerFatalError, R> => loop(context, attempt, 0)
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
  Effect.flatMap(DeimosConfig.DeimosConfig, (settings) => policyOf(consumer, settings)(context, attempt))

const spanOptions = (consumer: Any, raw: RawMessage, headers: Readonly<Record<string, string>>) => {
  const traceparent = headers[TraceContext.header]
  const parent = traceparent === undefined ? Option.none() : TraceContext.parse(traceparent)
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

/** Span links beyond this many distinct producer traces in one batch are dropped. */
const maxBatchLinks = 128

/** The span of a batch: a child of the first message's trace, linked to the other messages' traces. */
const batchSpanOptions = (
  consumer: Any,
  first: RawMessage,
  headers: ReadonlyArray<Readonly<Record<string, string>>>
) => {
  const options = spanOptions(consumer, first, headers[0])
  const seen = new Set<string>()
  const own = headers[0][TraceContext.header]
  if (own !== undefined) seen.add(own)
  const links: Array<Tracer.SpanLink> = []
  for (let i = 1; i < headers.length && links.length < maxBatchLinks; i++) {
    const traceparent = headers[i][TraceContext.header]
    if (traceparent === undefined || seen.has(traceparent)) continue
    seen.add(traceparent)
    const span = TraceContext.parse(traceparent)
    if (Option.isSome(span)) links.push({ _tag: "SpanLink", span: span.value, attributes: {} })
  }
  return links.length === 0 ? options : { ...options, links }
}

/**
 * A consumer bound to what handling its messages needs (schema backend, settings, key spec, metrics), made once
 * and used for every message: what the Kafka runtime runs per group member. Each message or batch is one attempt
 * under the error policy, with the `handler` metrics and a `deimos-consumer` span continuing the producer's trace.
 *
 * @since 0.1.0
 */
export interface Processor<R> {
  readonly consumer: Any
  /** Decodes one message and runs `handle` on it (`message`/`batch` delivery; a batch handler gets a batch of one). */
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

/** What a step reads of the fiber it runs in, without a fiber step: its metric labels and its clock. */
const fiberView = (fiber: Fiber.RuntimeFiber<unknown, unknown>) => ({
  labels: fiber.getFiberRef(FiberRef.currentMetricLabels),
  clock: EffectContext.get(fiber.currentDefaultServices as EffectContext.Context<Clock.Clock>, Clock.Clock)
})

/**
 * Binds a consumer to the schema backend and settings in context.
 *
 * @since 0.1.0
 */
export const processor = <A, K, E, R>(
  consumer: Consumer<A, K, E, R>
): Effect.Effect<Processor<R>, never, SchemaBackend.SchemaBackend> =>
  Effect.map(
    Effect.zip(SchemaBackend.SchemaBackend, DeimosConfig.DeimosConfig),
    ([backend, settings]) => makeProcessor(consumer, backend, settings)
  )

const makeProcessor = <A, K, E, R>(
  consumer: Consumer<A, K, E, R>,
  backend: SchemaBackend.SchemaBackend.Service,
  settings: DeimosConfig.Settings
): Processor<R> => {
  const decodeKeyOf = keyDecoder(consumer, backend)
  const decodePayloadOf = payloadDecoder(consumer, backend)
  const policy = policyOf(consumer, settings)
  const handler = consumer.handler

  const measureBatch = <X, Y, Z>(first: RawMessage, count: number, body: Effect.Effect<X, Y, Z>) =>
    Effect.withFiberRuntime<X, Y, Z>((fiber) => {
      const { clock, labels } = fiberView(fiber)
      const m = Metrics.handlerMetrics(first.topic)
      m.batchReceived.unsafeUpdate(1, labels)
      const start = clock.unsafeCurrentTimeMillis()
      return Effect.matchCauseEffect(body, {
        onFailure: (cause) => {
          m.batchError.unsafeUpdate(1, labels)
          return Exit.failCause(cause)
        },
        onSuccess: (result) => {
          m.consumeBatch.unsafeUpdate((clock.unsafeCurrentTimeMillis() - start) / 1000, labels)
          m.batchSuccess.unsafeUpdate(1, labels)
          return Effect.as(
            Instrumentation.emit({
              _tag: "BatchConsumed",
              consumer: consumer.name,
              topic: first.topic,
              partition: first.partition,
              count
            }),
            result
          )
        }
      })
    })

  const message = (raw: RawMessage): Effect.Effect<void, ConsumerFatalError, R> => {
    if (handler._tag !== "Message") return batch([raw])
    const handle = handler.handle
    const headers = headersOf(raw)
    const context = attemptAt(raw, null)
    const run = (retryCount: number): Effect.Effect<void, unknown, R> =>
      Effect.withFiberRuntime<void, unknown, R>((fiber) => {
        const { clock, labels } = fiberView(fiber)
        const m = Metrics.handlerMetrics(raw.topic)
        if (retryCount === 0) m.received.unsafeUpdate(1, labels)
        const failed = (cause: Cause.Cause<unknown>) => {
          if (!Cause.isInterruptedOnly(cause)) m.error.unsafeUpdate(1, labels)
          return Exit.failCause(cause)
        }
        const handleDecoded = (key: unknown, payload: unknown): Effect.Effect<void, unknown, R> => {
          const metadata: Metadata<K> = {
            consumer: consumer.name,
            topic: raw.topic,
            partition: raw.partition,
            offset: raw.offset,
            key: key as K | null,
            headers,
            timestamp: new Date(Number(raw.timestamp)),
            retryCount
          }
          context.payload = payload
          context.metadata = metadata
          const start = clock.unsafeCurrentTimeMillis()
          const delayed = timestampMillis(payload)
          if (delayed !== undefined) m.timeDelayed.unsafeUpdate((start - delayed) / 1000, labels)
          return Effect.matchCauseEffect(handle(payload as A | null, metadata), {
            onFailure: failed,
            onSuccess: () => {
              m.consume.unsafeUpdate((clock.unsafeCurrentTimeMillis() - start) / 1000, labels)
              m.success.unsafeUpdate(1, labels)
              return Exit.void
            }
          })
        }
        const key = decodeKeyOf(raw)
        const payload = decodePayloadOf(raw)
        if (Exit.isExit(key) && Exit.isExit(payload)) {
          const k = key as Exit.Exit<unknown, SchemaError>
          const p = payload as Exit.Exit<unknown, SchemaError>
          if (Exit.isFailure(k)) return failed(k.cause)
          if (Exit.isFailure(p)) return failed(p.cause)
          return handleDecoded(k.value, p.value)
        }
        return Effect.matchCauseEffect(Effect.zip(key, payload), {
          onFailure: failed,
          onSuccess: ([k, p]) => handleDecoded(k, p)
        })
      }).pipe(Effect.withSpan("deimos-consumer", spanOptions(consumer, raw, headers)))
    return policy(context, run)
  }

  /** A batch's decodable messages, as parallel arrays (what `handleBatch` gets). */
  interface Decoded {
    readonly raws: Array<RawMessage>
    readonly keys: Array<unknown>
    readonly payloads: Array<A | null>
  }

  /** A message that cannot be decoded, as its own attempt: the policy swallows it (counted) or stops there. */
  const undecodable = (raw: RawMessage, cause: Cause.Cause<SchemaError>) =>
    policy(
      attemptAt(raw, null),
      () =>
        Effect.withFiberRuntime<void, SchemaError>((fiber) => {
          Metrics.handlerMetrics(raw.topic).error.unsafeUpdate(1, fiberView(fiber).labels)
          return Exit.failCause(cause)
        }).pipe(Effect.withSpan("deimos-consumer", spanOptions(consumer, raw, headersOf(raw))))
    )

  /** Where a batch's messages go as they are decoded: among the decoded, or as an attempt of their own. */
  const sinkOf = () => {
    const decoded: Decoded = { raws: [], keys: [], payloads: [] }
    const invalid: Array<Effect.Effect<void, ConsumerFatalError>> = []
    return {
      add: (raw: RawMessage, key: Exit.Exit<unknown, SchemaError>, payload: Exit.Exit<unknown, SchemaError>) => {
        if (Exit.isSuccess(key) && Exit.isSuccess(payload)) {
          decoded.raws.push(raw)
          decoded.keys.push(key.value)
          decoded.payloads.push(payload.value as A | null)
        } else {
          invalid.push(
            undecodable(raw, Exit.isFailure(key) ? key.cause : (payload as Exit.Failure<unknown, SchemaError>).cause)
          )
        }
      },
      /** The undecodable messages' attempts, then the handler on the others. */
      handle: (): Effect.Effect<void, ConsumerFatalError, R> => {
        const handle = decoded.raws.length === 0 ? Effect.void : handleAll(decoded)
        return invalid.length === 0 ? handle : Effect.zipRight(Effect.all(invalid, { discard: true }), handle)
      }
    }
  }

  const batch = (raws: ReadonlyArray<RawMessage>): Effect.Effect<void, ConsumerFatalError, R> => {
    if (raws.length === 0) return Effect.void
    const first = raws[0]
    if (handler._tag === "Message") {
      return measureBatch(first, raws.length, Effect.forEach(raws, message, { discard: true }))
    }
    // each message decoded on its own: one that cannot be is an attempt of its own under the policy, and the
    // handler gets the others (one bad message neither hides the batch nor is committed unseen)
    const handled = Effect.withFiberRuntime<void, ConsumerFatalError, R>((fiber) => {
      Metrics.handlerMetrics(first.topic).received.unsafeUpdate(raws.length, fiberView(fiber).labels)
      const sink = sinkOf()
      for (let i = 0; i < raws.length; i++) {
        const key = decodeKeyOf(raws[i])
        const payload = decodePayloadOf(raws[i])
        if (!Exit.isExit(key) || !Exit.isExit(payload)) {
          // the backend looked something up: the rest of the batch effect by effect
          return Effect.zipRight(
            Effect.forEach(raws.slice(i), (raw, j) =>
              Effect.map(
                Effect.zip(
                  Effect.exit(j === 0 ? key : decodeKeyOf(raw)),
                  Effect.exit(j === 0 ? payload : decodePayloadOf(raw))
                ),
                ([k, p]) => sink.add(raw, k, p)
              ), { discard: true }),
            Effect.suspend(sink.handle)
          )
        }
        sink.add(raws[i], key as Exit.Exit<unknown, SchemaError>, payload as Exit.Exit<unknown, SchemaError>)
      }
      return sink.handle()
    })
    return measureBatch(first, raws.length, handled)
  }

  /** `handleBatch` on the decoded messages of a batch, under the policy. */
  const handleAll = (decoded: Decoded): Effect.Effect<void, ConsumerFatalError, R> => {
    const handleBatch = (handler as Extract<typeof handler, { readonly _tag: "Batch" }>).handleBatch
    const { payloads, raws } = decoded
    const first = raws[0]
    const headers = raws.map(headersOf)
    const offsets = raws.map((raw) => raw.offset)
    const context = attemptAt(first, payloads)
    const run = (retryCount: number): Effect.Effect<void, unknown, R> =>
      Effect.withFiberRuntime<void, unknown, R>((fiber) => {
        const { labels } = fiberView(fiber)
        const m = Metrics.handlerMetrics(first.topic)
        const metadata: BatchMetadata<K> = {
          consumer: consumer.name,
          topic: first.topic,
          partition: first.partition,
          firstOffset: first.offset,
          lastOffset: offsets[offsets.length - 1],
          batchSize: raws.length,
          offsets,
          keys: decoded.keys as ReadonlyArray<K | null>,
          headers,
          retryCount
        }
        context.metadata = metadata
        return Effect.matchCauseEffect(handleBatch(payloads, metadata), {
          onFailure: (cause) => {
            if (!Cause.isInterruptedOnly(cause)) m.error.unsafeUpdate(raws.length, labels)
            return Exit.failCause(cause)
          },
          onSuccess: () => {
            m.success.unsafeUpdate(raws.length, labels)
            return Exit.void
          }
        })
      }).pipe(Effect.withSpan("deimos-consumer", batchSpanOptions(consumer, first, headers)))
    return policy(context, run)
  }

  return { consumer, message, batch, measureBatch }
}

/**
 * Decodes one message and runs the consumer's `handle` on it under the error policy, with the `handler` metrics
 * and a `deimos-consumer` span that continues the producer's trace. Fails only with `ConsumerFatalError`. The
 * runtime binds the consumer once with {@link processor}; this binds it per call.
 *
 * @since 0.1.0
 */
export const processMessage = <A, K, E, R>(
  consumer: Consumer<A, K, E, R>,
  raw: RawMessage
): Effect.Effect<void, ConsumerFatalError, R | SchemaBackend.SchemaBackend> =>
  Effect.flatMap(processor(consumer), (p) => p.message(raw))

/**
 * Processes a fetched batch of one partition: for `message`/`batch` delivery each message through
 * {@link processMessage}; for `inlineBatch` the decoded batch through `handleBatch` under the error policy.
 *
 * @since 0.1.0
 */
export const processBatch = <A, K, E, R>(
  consumer: Consumer<A, K, E, R>,
  raws: ReadonlyArray<RawMessage>
): Effect.Effect<void, ConsumerFatalError, R | SchemaBackend.SchemaBackend> =>
  Effect.flatMap(processor(consumer), (p) => p.batch(raws))
