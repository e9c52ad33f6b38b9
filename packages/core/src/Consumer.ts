/**
 * Consumers as values: a topic, a group, a schema handle, a key config, a delivery mode, a handler and an error
 * policy. This is what a user writes; the Kafka runtime and the test helpers run it through `ConsumerProcessor`.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import { ConsumerDefinitionError } from "./ConsumerError.js"
import type * as ErrorPolicy from "./ErrorPolicy.js"
import type * as KeyConfig from "./KeyConfig.js"
import type * as SchemaRef from "./SchemaRef.js"
import type * as Tombstone from "./Tombstone.js"

/** @since 0.1.0 */
export const TypeId: unique symbol = Symbol.for("@deimos/core/Consumer")

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
  /** How many payloads the handler gets. */
  readonly batchSize: number
  /** The offset of each payload (a message that cannot be decoded, or a skipped tombstone, is not among them). */
  readonly offsets: ReadonlyArray<string>
  readonly keys: ReadonlyArray<K | null>
  readonly headers: ReadonlyArray<Readonly<Record<string, string>>>
  readonly retryCount: number
}

/**
 * Delivery modes: `message` and `batch` run `handle` per message (`batch` counts the fetched batch in the batch
 * metrics); `inlineBatch` hands each fetched batch to `handleBatch`. The Kafka runtime commits what was handled at
 * the end of each fetched batch and every `offsetCommitThreshold` messages or `offsetCommitInterval` within one,
 * or after every message with `commitEveryMessage`.
 *
 * @since 0.1.0
 */
export type Delivery = "message" | "batch" | "inlineBatch"

/**
 * What a handler receives for each message: the decoded payload. With `tombstones: true`, a tombstone (a message
 * with a key and a null value) arrives as a `Tombstone` carrying the decoded key; otherwise tombstones are skipped
 * (counted as `handler{status:tombstone_skipped}` and committed) and never reach the handler. A null value without
 * a key deletes nothing and is always skipped.
 *
 * @since 0.1.0
 */
export type Payload<A, K, T extends boolean> = T extends true ? A | Tombstone.Tombstone<K> : A

/**
 * @since 0.1.0
 */
export declare namespace Consumer {
  /**
   * Kafka settings per consumer, read by the Kafka runtime.
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
    /** @default 1 MiB */
    readonly maxBytesPerPartition?: number | undefined
    readonly minBytes?: number | undefined
    /** How long the broker may hold a fetch for data; a stop waits for the fetch in flight. @default 500 millis */
    readonly maxWaitTime?: Duration.DurationInput | undefined
    /** @default 30 seconds */
    readonly sessionTimeout?: Duration.DurationInput | undefined
    /** @default 3 seconds */
    readonly heartbeatInterval?: Duration.DurationInput | undefined
    /** Commit at least this often while a fetched batch is handled. @default 5 seconds */
    readonly offsetCommitInterval?: Duration.DurationInput | undefined
    /** Commit after this many handled messages within a fetched batch. @default 1000 */
    readonly offsetCommitThreshold?: number | undefined
    /**
     * Commit after every handled message, waiting for the commit before the next one: at most one message is handled
     * again after a crash, at the cost of a round trip per message. @default false
     */
    readonly commitEveryMessage?: boolean | undefined
  }

  /**
   * @since 0.1.0
   */
  export interface BaseOptions<S extends SchemaRef.Any, KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>, T>
    extends KafkaOptions
  {
    /** The topic, without the global prefix. */
    readonly topic: string
    readonly groupId: string
    readonly schema: S
    readonly keyConfig: KC
    /** @default `<groupId>:<topic>` */
    readonly name?: string | undefined
    /** Hand tombstones to the handler (as `Tombstone`s with the key) instead of skipping them. @default false */
    readonly tombstones?: T | undefined
  }

  /**
   * @since 0.1.0
   */
  export interface MessageOptions<
    S extends SchemaRef.Any,
    KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
    E,
    R,
    T extends boolean,
    Tags extends string
  > extends BaseOptions<S, KC, T> {
    /** @default "message" */
    readonly delivery?: "message" | "batch" | undefined
    readonly handle: (
      payload: Payload<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>, T>,
      metadata: Metadata<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>
    ) => Effect.Effect<void, E, R> & ErrorPolicy.CheckTags<NoInfer<E>, NoInfer<Tags>>
    readonly errorPolicy?:
      | ErrorPolicy.ErrorPolicy<
        NoInfer<E>,
        NoInfer<Payload<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>, T>>,
        Tags
      >
      | undefined
  }

  /**
   * @since 0.1.0
   */
  export interface InlineBatchOptions<
    S extends SchemaRef.Any,
    KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
    E,
    R,
    T extends boolean,
    Tags extends string
  > extends BaseOptions<S, KC, T> {
    readonly delivery: "inlineBatch"
    /**
     * The most messages one `handleBatch` call gets: a larger fetched batch is handed over in slices, committed as
     * they are handled (so a crash redelivers at most what was handled since the last commit). @default 1000
     */
    readonly maxBatchSize?: number | undefined
    readonly handleBatch: (
      payloads: ReadonlyArray<Payload<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>, T>>,
      metadata: BatchMetadata<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>
    ) => Effect.Effect<void, E, R> & ErrorPolicy.CheckTags<NoInfer<E>, NoInfer<Tags>>
    readonly errorPolicy?:
      | ErrorPolicy.ErrorPolicy<
        NoInfer<E>,
        NoInfer<ReadonlyArray<Payload<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>, T>>>,
        Tags
      >
      | undefined
  }

  /**
   * @since 0.1.0
   */
  export type Options<
    S extends SchemaRef.Any,
    KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
    E,
    R,
    T extends boolean,
    Tags extends string
  > = MessageOptions<S, KC, E, R, T, Tags> | InlineBatchOptions<S, KC, E, R, T, Tags>

  /**
   * What every consumer definition holds.
   *
   * @since 0.1.0
   */
  export interface Common<A> extends KafkaOptions {
    readonly [TypeId]: typeof TypeId
    readonly name: string
    readonly topic: string
    readonly groupId: string
    readonly schema: SchemaRef.SchemaRef<A, unknown>
    readonly keyConfig: KeyConfig.KeyConfig<A>
    readonly tombstones: boolean
  }
}

/**
 * A consumer whose handler runs per message (`message` or `batch` delivery). `P` is what the handler receives.
 *
 * @since 0.1.0
 */
export interface MessageConsumer<A, K, E, R, P> extends Consumer.Common<A> {
  readonly delivery: "message" | "batch"
  readonly handle: (payload: P, metadata: Metadata<K>) => Effect.Effect<void, E, R>
  readonly errorPolicy: ErrorPolicy.ErrorPolicy<E, P>
}

/**
 * A consumer whose handler gets each fetched batch (`inlineBatch` delivery).
 *
 * @since 0.1.0
 */
export interface InlineBatchConsumer<A, K, E, R, P> extends Consumer.Common<A> {
  readonly delivery: "inlineBatch"
  readonly maxBatchSize?: number | undefined
  readonly handleBatch: (payloads: ReadonlyArray<P>, metadata: BatchMetadata<K>) => Effect.Effect<void, E, R>
  readonly errorPolicy: ErrorPolicy.ErrorPolicy<E, ReadonlyArray<P>>
}

/**
 * A consumer definition: `A` the payload type, `K` the key type, `E` and `R` the handler's error and context, `P`
 * what the handler receives per message (`A`, or `A | Tombstone` with `tombstones: true`).
 *
 * @since 0.1.0
 */
export type Consumer<A, K, E = never, R = never, P = A> =
  | MessageConsumer<A, K, E, R, P>
  | InlineBatchConsumer<A, K, E, R, P>

/**
 * Any consumer.
 *
 * @since 0.1.0
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Any = Consumer<any, any, any, any, any>

/**
 * The context a consumer's handler needs.
 *
 * @since 0.1.0
 */
export type Requirements<C> = C extends Consumer<infer _A, infer _K, infer _E, infer R, infer _P> ? R : never

/**
 * The error a consumer's handler fails with.
 *
 * @since 0.1.0
 */
export type Error<C> = C extends Consumer<infer _A, infer _K, infer E, infer _R, infer _P> ? E : never

const deliveries: ReadonlyArray<string> = ["message", "batch", "inlineBatch"]

/**
 * Checks a definition: a topic, a group, a known delivery mode with its matching handler.
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
 * Defines a consumer. The payload type comes from the schema handle, the key type from the key config, and the
 * error policy's tags are checked against the handler's error type: a tag the handler cannot fail with (plus
 * `"SchemaError"` and `"Defect"`) does not compile. Throws `ConsumerDefinitionError` when the
 * delivery mode and handler do not match (the types rule that out; the check is for untyped callers).
 *
 * @since 0.1.0
 */
export const make = <
  S extends SchemaRef.Any,
  const KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
  E = never,
  R = never,
  T extends boolean = false,
  const Tags extends string = never
>(
  options: Consumer.Options<S, KC, E, R, T, Tags>
): Consumer<
  SchemaRef.Type<S>,
  KeyConfig.KeyOf<SchemaRef.Type<S>, KC>,
  E,
  R,
  Payload<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>, T>
> => {
  const error = validate(options as Parameters<typeof validate>[0])
  if (error !== undefined) throw error
  const { errorPolicy, name, tombstones, ...rest } = options
  return {
    ...rest,
    [TypeId]: TypeId,
    name: name ?? `${options.groupId}:${options.topic}`,
    delivery: options.delivery ?? "message",
    tombstones: tombstones === true,
    errorPolicy: errorPolicy ?? {}
  } as unknown as Consumer<
    SchemaRef.Type<S>,
    KeyConfig.KeyOf<SchemaRef.Type<S>, KC>,
    E,
    R,
    Payload<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>, T>
  >
}
