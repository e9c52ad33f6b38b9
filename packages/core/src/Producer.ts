/**
 * Producers as values: bound to a topic, a schema handle and a key config; `publish` and `publishList` run the full
 * message pipeline of REFERENCE §1 and hand encoded batches to the `ProducerBackend` in scope.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as DeimosConfig from "./DeimosConfig.js"
import * as Instrumentation from "./Instrumentation.js"
import * as KeyConfig from "./KeyConfig.js"
import * as ProducerBackend from "./ProducerBackend.js"
import { ProducerError } from "./ProducerError.js"
import * as SchemaBackend from "./SchemaBackend.js"
import type { SchemaError } from "./SchemaError.js"
import type * as SchemaRef from "./SchemaRef.js"
import * as Tombstone from "./Tombstone.js"
import * as TraceContext from "./TraceContext.js"

/** @since 0.1.0 */
export const TypeId: unique symbol = Symbol.for("@deimos/core/Producer")

/** @since 0.1.0 */
export const EnvelopeTypeId: unique symbol = Symbol.for("@deimos/core/Producer/Envelope")

/**
 * @since 0.1.0
 */
export declare namespace Producer {
  /**
   * @since 0.1.0
   */
  export interface Options<S extends SchemaRef.Any, KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>> {
    /** The topic, without the global prefix. */
    readonly topic: string
    readonly schema: S
    readonly keyConfig: KC
    /** Used in logs, sent-message records and `disabledFor`. @default the topic */
    readonly name?: string | undefined
    /** Computes the partition key from the payload. @default the key */
    readonly partitionKey?: ((payload: SchemaRef.Type<S>) => string) | undefined
    /** Messages per backend call. @default 500 */
    readonly maxBatchSize?: number | undefined
    /** Drops everything this producer publishes. @default false */
    readonly disabled?: boolean | undefined
  }

  /**
   * Per-message options.
   *
   * @since 0.1.0
   */
  export interface MessageOptions<K> {
    readonly key?: K | undefined
    readonly headers?: Readonly<Record<string, string>> | undefined
    readonly partitionKey?: string | undefined
  }

  /**
   * Per-call options.
   *
   * @since 0.1.0
   */
  export interface PublishOptions<K> extends MessageOptions<K> {
    /** Ask a buffering backend to send now and wait for the broker. */
    readonly sync?: boolean | undefined
  }

  /**
   * A payload with per-message options, for `publishList`.
   *
   * @since 0.1.0
   */
  export interface Envelope<A, K> extends MessageOptions<K> {
    readonly [EnvelopeTypeId]: typeof EnvelopeTypeId
    readonly payload: A | null
  }

  /**
   * What `publishList` accepts: payloads, tombstones, or envelopes.
   *
   * @since 0.1.0
   */
  export type Input<A, K> = A | Tombstone.Tombstone<K> | Envelope<A, K>

  /**
   * What publishing needs in context.
   *
   * @since 0.1.0
   */
  export type Context = ProducerBackend.ProducerBackend | SchemaBackend.SchemaBackend

  /**
   * Publishing errors.
   *
   * @since 0.1.0
   */
  export type Error = ProducerError | SchemaError
}

/**
 * @since 0.1.0
 */
export interface Producer<A, K> {
  readonly [TypeId]: typeof TypeId
  readonly name: string
  readonly topic: string
  readonly schema: SchemaRef.SchemaRef<A, unknown>
  readonly keyConfig: KeyConfig.KeyConfig<A>
  readonly maxBatchSize: number
  /** Publishes one payload (or tombstone). */
  readonly publish: (
    payload: A | Tombstone.Tombstone<K>,
    options?: Producer.PublishOptions<K>
  ) => Effect.Effect<void, Producer.Error, Producer.Context>
  /** Publishes many, in batches of `maxBatchSize`. */
  readonly publishList: (
    payloads: Iterable<Producer.Input<A, K>>,
    options?: { readonly sync?: boolean | undefined; readonly headers?: Readonly<Record<string, string>> }
  ) => Effect.Effect<void, Producer.Error, Producer.Context>
}

/**
 * Any producer, for `disabledFor`.
 *
 * @since 0.1.0
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Any = Producer<any, any>

/**
 * Which producers are disabled in the current fiber. A `Context.Reference`, set with {@link disabled} and
 * {@link disabledFor}; nothing global.
 *
 * @since 0.1.0
 * @category tags
 */
export class ProducersDisabled extends Context.Reference<ProducersDisabled>()("@deimos/core/Producer/Disabled", {
  defaultValue: (): { readonly all: boolean; readonly names: ReadonlySet<string> } => ({
    all: false,
    names: new Set()
  })
}) {}

/**
 * Runs `effect` with every producer disabled (their publishes are dropped). Nestable; fiber-local.
 *
 * @since 0.1.0
 */
export const disabled = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    ProducersDisabled,
    (current) => Effect.provideService(effect, ProducersDisabled, { ...current, all: true })
  )

/**
 * Runs `effect` with the given producers disabled. Nestable: adds to the producers already disabled.
 *
 * @since 0.1.0
 */
export const disabledFor =
  (producers: ReadonlyArray<Any | string>) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(ProducersDisabled, (current) =>
      Effect.provideService(effect, ProducersDisabled, {
        all: current.all,
        names: new Set([...current.names, ...producers.map((p) => typeof p === "string" ? p : p.name)])
      }))

/**
 * A payload with per-message options (key, headers, partition key), for `publishList`. A `null` payload is a
 * tombstone.
 *
 * @since 0.1.0
 */
export const envelope = <A, K = unknown>(
  payload: A | null,
  options: Producer.MessageOptions<K> = {}
): Producer.Envelope<A, K> => ({ [EnvelopeTypeId]: EnvelopeTypeId, payload, ...options })

const isEnvelope = (u: unknown): u is Producer.Envelope<unknown, unknown> =>
  typeof u === "object" && u !== null && EnvelopeTypeId in u

/**
 * A producer for a topic. The payload type comes from the schema handle, the key type from the key config.
 *
 * @since 0.1.0
 */
export const make = <
  S extends SchemaRef.Any,
  const KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>
>(
  options: Producer.Options<S, KC>
): Producer<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>> => {
  type A = SchemaRef.Type<S>
  type K = KeyConfig.KeyOf<A, KC>
  const name = options.name ?? options.topic
  const maxBatchSize = options.maxBatchSize ?? 500
  const keyConfig = options.keyConfig as KeyConfig.KeyConfig<unknown>
  const keySchema = KeyConfig.keySchema(keyConfig, options.schema)

  const fail = (reason: "MissingKey" | "UnexpectedKey", topic: string, message: string) =>
    Effect.fail(new ProducerError({ reason, producer: name, topic, retriable: false, message }))

  interface Pending {
    readonly payload: Record<string, unknown> | null
    readonly key: unknown
    readonly headers: Readonly<Record<string, string>>
    readonly partitionKey: string | undefined
  }

  const normalize = (input: Producer.Input<A, K>, defaults: Producer.MessageOptions<K>): Pending => {
    if (Tombstone.isTombstone(input)) {
      return { payload: null, key: input.key, headers: defaults.headers ?? {}, partitionKey: defaults.partitionKey }
    }
    if (isEnvelope(input)) {
      return {
        payload: input.payload as Record<string, unknown> | null,
        key: input.key ?? defaults.key,
        headers: { ...defaults.headers, ...input.headers },
        partitionKey: input.partitionKey ?? defaults.partitionKey
      }
    }
    return {
      payload: input as Record<string, unknown>,
      key: defaults.key,
      headers: defaults.headers ?? {},
      partitionKey: defaults.partitionKey
    }
  }

  const isEmpty = (payload: Record<string, unknown> | null) =>
    payload === null || (typeof payload === "object" && Object.keys(payload).length === 0)

  const textEncoder = new TextEncoder()

  // The hot path: synchronous steps in plain code, then only the backend's effects (coerce, key, value).
  const prepare = (
    pending: Pending,
    topic: string,
    fields: { readonly messageId: boolean; readonly timestamp: boolean },
    traceparent: Option.Option<string>,
    backend: SchemaBackend.SchemaBackend.Service
  ): Effect.Effect<ProducerBackend.ProducerMessage, Producer.Error> => {
    const tombstone = isEmpty(pending.payload)
    // 1. message_id and timestamp
    let payload = pending.payload
    if (payload !== null && !tombstone && (fields.messageId || fields.timestamp)) {
      const missingId = fields.messageId && (payload.message_id === undefined || payload.message_id === null)
      const missingTs = fields.timestamp && (payload.timestamp === undefined || payload.timestamp === null)
      if (missingId || missingTs) {
        payload = { ...payload }
        if (missingId) payload.message_id = globalThis.crypto.randomUUID()
        if (missingTs) payload.timestamp = new Date()
      }
    }
    // 2. key (explicit, else from the payload's key field)
    let key = pending.key
    if (key === undefined && "field" in keyConfig && payload !== null) key = payload[keyConfig.field]
    if ("none" in keyConfig) {
      if (key !== undefined && key !== null) {
        return fail(
          "UnexpectedKey",
          topic,
          `Producer "${name}" has keyConfig { none: true } but a key was given; drop the key or set a key config such as { plain: true }`
        )
      }
    } else if (key === undefined || key === null) {
      return fail(
        "MissingKey",
        topic,
        `Producer "${name}" (keyConfig ${
          KeyConfig.describe(keyConfig)
        }) needs a key and none was given: pass { key } (or set the key field in the payload), or use keyConfig: { none: true } for unkeyed messages or keyConfig: { plain: true } for a plain string key`
      )
    }
    const rawKey = key ?? null
    // 3. partition key
    const partitionKey = pending.partitionKey ??
      (options.partitionKey !== undefined && payload !== null && !tombstone
        ? options.partitionKey(payload as A)
        : rawKey === null
        ? null
        : String(rawKey))
    const headers = Option.isSome(traceparent) && pending.headers[TraceContext.header] === undefined
      ? { ...pending.headers, [TraceContext.header]: traceparent.value }
      : pending.headers
    // 4. coerce, 5. encode key then value
    const encodeKey: Effect.Effect<Uint8Array | null, SchemaError> = rawKey === null
      ? Effect.succeed(null)
      : keySchema === undefined
      ? Effect.succeed(rawKey instanceof Uint8Array ? rawKey : textEncoder.encode(String(rawKey)))
      : backend.encodeKey(rawKey, { key: keySchema, topic })
    if (tombstone) {
      return Effect.map(encodeKey, (encodedKey) => ({
        key: encodedKey,
        value: null,
        partitionKey,
        headers,
        rawKey,
        payload: null,
        producer: name
      }))
    }
    return Effect.flatMap(
      backend.coerce(payload, options.schema),
      (value) =>
        Effect.flatMap(
          encodeKey,
          (encodedKey) =>
            Effect.map(backend.encode(value, { schema: options.schema, topic }), (encodedValue) => ({
              key: encodedKey,
              value: encodedValue,
              partitionKey,
              headers,
              rawKey,
              payload: value,
              producer: name
            }))
        )
    )
  }

  const logPayloads = (
    level: DeimosConfig.PayloadLogLevel,
    topic: string,
    messages: ReadonlyArray<ProducerBackend.ProducerMessage>
  ) => {
    const details = level === "full"
      ? { payloads: messages.map((m) => ({ key: m.rawKey, payload: m.payload })) }
      : level === "keys"
      ? { keys: messages.map((m) => m.rawKey) }
      : level === "headers"
      ? { headers: messages.map((m) => m.headers) }
      : {}
    return Effect.logDebug("Publishing messages").pipe(
      Effect.annotateLogs({ producer: name, topic, count: messages.length, ...details })
    )
  }

  const publishList: Producer<A, K>["publishList"] = (inputs, callOptions = {}) =>
    Effect.gen(function*() {
      const config = yield* DeimosConfig.DeimosConfig
      const disabledNow = yield* ProducersDisabled
      if (
        options.disabled === true || config.producersDisabled || disabledNow.all || disabledNow.names.has(name)
      ) {
        return
      }
      const items = Array.from(inputs)
      if (items.length === 0) return
      const backend = yield* SchemaBackend.SchemaBackend
      const producerBackend = yield* ProducerBackend.ProducerBackend
      const topic = config.topicPrefix + options.topic
      const schemaFields = yield* backend.schemaFields(options.schema)
      const fields = {
        messageId: schemaFields.some((f) => f.name === "message_id"),
        timestamp: schemaFields.some((f) => f.name === "timestamp")
      }
      const traceparent = yield* TraceContext.current
      const defaults: Producer.MessageOptions<K> = { headers: callOptions.headers }
      const messages = yield* Effect.forEach(
        items,
        (item) => prepare(normalize(item, defaults), topic, fields, traceparent, backend)
      )
      yield* Instrumentation.emit({ _tag: "EncodeMessages", producer: name, topic, count: messages.length })
      yield* logPayloads(config.payloadLogLevel, topic, messages)
      for (let i = 0; i < messages.length; i += maxBatchSize) {
        yield* producerBackend.execute(topic, messages.slice(i, i + maxBatchSize), { sync: callOptions.sync })
      }
    })

  return {
    [TypeId]: TypeId,
    name,
    topic: options.topic,
    schema: options.schema as SchemaRef.SchemaRef<A, unknown>,
    keyConfig: options.keyConfig as KeyConfig.KeyConfig<A>,
    maxBatchSize,
    publishList,
    publish: (payload, publishOptions = {}) =>
      publishList([
        Tombstone.isTombstone(payload) ? payload : envelope<A, K>(payload, {
          key: publishOptions.key,
          headers: publishOptions.headers,
          partitionKey: publishOptions.partitionKey
        })
      ], { sync: publishOptions.sync })
  }
}
