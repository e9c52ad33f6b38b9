/**
 * Producers as values: bound to a topic, a schema handle and a key config; `publish` and `publishList` run the full
 * message pipeline of REFERENCE §1 and hand encoded batches to the `ProducerBackend` in scope.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as DeimosConfig from "./DeimosConfig.js"
import * as Eager from "./Eager.js"
import * as Instrumentation from "./Instrumentation.js"
import * as Utf8 from "./internal/utf8.js"
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

const noHeaders: Readonly<Record<string, string>> = Object.freeze({})

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

  const keyField = "field" in keyConfig ? keyConfig.field : undefined
  const unkeyed = "none" in keyConfig

  const isEmpty = (payload: Record<string, unknown> | null) => {
    if (payload === null) return true
    if (typeof payload !== "object") return false
    for (const _ in payload) return false
    return true
  }

  interface Filled {
    readonly messageId: boolean
    readonly timestamp: boolean
  }

  /** What every message of one `publishList` call shares. */
  interface Call {
    readonly topic: string
    readonly codec: SchemaBackend.CodecOptions
    readonly key: SchemaBackend.KeyOptions | undefined
    readonly fields: Filled
    readonly traceparent: Option.Option<string>
    readonly backend: SchemaBackend.SchemaBackend.Service
    readonly headers: Readonly<Record<string, string>> | undefined
  }

  // The hot path: the synchronous steps of REFERENCE §1 in plain code, then the backend's coerce and encodes;
  // when those answer with Exits (the mock and Avro backends do) the message is built without a continuation.
  const prepare = (
    input: Producer.Input<A, K>,
    call: Call
  ): Effect.Effect<ProducerBackend.ProducerMessage, Producer.Error> => {
    const { backend, fields, topic, traceparent } = call
    // 0. the input: a tombstone, an envelope with its own options, or a payload
    let payload: Record<string, unknown> | null
    let key: unknown
    let headers = call.headers ?? noHeaders
    let partitionKey: string | null | undefined
    if (Tombstone.isTombstone(input)) {
      payload = null
      key = input.key
    } else if (isEnvelope(input)) {
      payload = input.payload as Record<string, unknown> | null
      key = input.key
      partitionKey = input.partitionKey
      if (input.headers !== undefined) {
        headers = call.headers === undefined ? input.headers : { ...call.headers, ...input.headers }
      }
    } else {
      payload = input as Record<string, unknown>
    }
    const tombstone = isEmpty(payload)
    // 1. message_id and timestamp
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
    if (key === undefined && keyField !== undefined && payload !== null) key = payload[keyField]
    if (unkeyed) {
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
    partitionKey ??= options.partitionKey !== undefined && payload !== null && !tombstone
      ? options.partitionKey(payload as A)
      : rawKey === null
      ? null
      : String(rawKey)
    if (Option.isSome(traceparent) && headers[TraceContext.header] === undefined) {
      headers = { ...headers, [TraceContext.header]: traceparent.value }
    }
    // 4. coerce, 5. encode key then value
    const encodeKey: Effect.Effect<Uint8Array | null, SchemaError> = rawKey === null
      ? Exit.succeed(null)
      : keySchema === undefined
      ? Exit.succeed(rawKey instanceof Uint8Array ? rawKey : Utf8.encode(String(rawKey)))
      : backend.encodeKey(rawKey, call.key!)
    const message = (
      encodedKey: Uint8Array | null,
      value: Uint8Array | null,
      coerced: unknown
    ): ProducerBackend.ProducerMessage => ({
      key: encodedKey,
      value,
      partitionKey: partitionKey ?? null,
      headers,
      rawKey,
      payload: coerced,
      producer: name
    })
    if (tombstone) return Eager.map(encodeKey, (encodedKey) => message(encodedKey, null, null))
    const coerced = backend.coerce(payload, options.schema)
    // the common case, every step already done (Exits): no continuation is built
    if (Exit.isExit(coerced) && Exit.isExit(encodeKey)) {
      const value = coerced as Exit.Exit<unknown, SchemaError>
      const encodedKey = encodeKey as Exit.Exit<Uint8Array | null, SchemaError>
      if (Exit.isSuccess(value) && Exit.isSuccess(encodedKey)) {
        const encoded = backend.encode(value.value, call.codec)
        if (Exit.isExit(encoded)) {
          const bytes = encoded as Exit.Exit<Uint8Array, SchemaError>
          return Exit.isSuccess(bytes)
            ? Exit.succeed(message(encodedKey.value, bytes.value, value.value))
            : Exit.failCause(bytes.cause)
        }
        return Effect.map(encoded, (bytes) => message(encodedKey.value, bytes, value.value))
      }
    }
    return Eager.flatMap(
      coerced,
      (value) =>
        Eager.flatMap(
          encodeKey,
          (encodedKey) => Eager.map(backend.encode(value, call.codec), (bytes) => message(encodedKey, bytes, value))
        )
    )
  }

  // which of message_id / timestamp the schema has, per backend (a memo: the answer never changes)
  const fieldsByBackend = new WeakMap<SchemaBackend.SchemaBackend.Service, Filled>()
  const filledFields = (backend: SchemaBackend.SchemaBackend.Service): Effect.Effect<Filled, SchemaError> => {
    const known = fieldsByBackend.get(backend)
    if (known !== undefined) return Exit.succeed(known)
    return Eager.map(backend.schemaFields(options.schema), (schemaFields) => {
      const filled = {
        messageId: schemaFields.some((f) => f.name === "message_id"),
        timestamp: schemaFields.some((f) => f.name === "timestamp")
      }
      fieldsByBackend.set(backend, filled)
      return filled
    })
  }

  // built only when debug logs are on: the details copy every payload
  const logPayloads = (
    level: DeimosConfig.PayloadLogLevel,
    topic: string,
    messages: ReadonlyArray<ProducerBackend.ProducerMessage>
  ) =>
    Effect.suspend(() => {
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
    }).pipe(Effect.whenLogLevel("Debug"))

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
      const call: Call = {
        topic,
        codec: { schema: options.schema, topic },
        key: keySchema === undefined ? undefined : { key: keySchema, topic },
        fields: yield* filledFields(backend),
        traceparent: yield* TraceContext.current,
        backend,
        headers: callOptions.headers
      }
      const messages = yield* Eager.forEach(items, (item) => prepare(item, call))
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
