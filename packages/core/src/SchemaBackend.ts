/**
 * The schema backend port. Resolve, then run: `codec(schema, topic)` does what may need I/O once (a registry
 * lookup or registration, parsing an Avro type, building a validator) and answers a {@link Codec} whose `encode` and
 * `decode` are plain synchronous functions returning `Either`. Backends cache codecs per schema handle and topic.
 * Bytes are `Uint8Array`; no driver types cross this port. The mock and JSON backends are in `MockBackend` and
 * `JsonBackend`; the Avro backends in `@deimos/avro`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as SchemaError from "./SchemaError.js"
import type * as SchemaRef from "./SchemaRef.js"

/**
 * One field of a record schema, as reported by `fields`.
 *
 * @since 0.1.0
 */
export interface SchemaField {
  readonly name: string
  /** Avro-style type name: `string`, `int`, `long`, `float`, `double`, `boolean`, `bytes`, `record`, `enum`, `array`, `map`, `fixed`, `null`, `union`, `unknown`. */
  readonly type: string
  /** Avro logical type, e.g. `timestamp-millis`, `date`, `uuid`. */
  readonly logicalType?: string | undefined
  /** True when `null` is allowed (a union with null, or an optional field). */
  readonly nullable: boolean
  /** Enum symbols, for enums. */
  readonly symbols?: ReadonlyArray<string> | undefined
  /** True when the schema declares a default. */
  readonly hasDefault: boolean
  readonly default?: unknown
}

/**
 * How a key is encoded: from one field of the value schema (an auto-generated `<Schema>_key` record), or with a
 * schema of its own.
 *
 * @since 0.1.0
 */
export type KeySchema =
  | { readonly _tag: "Field"; readonly field: string; readonly valueSchema: SchemaRef.Any }
  | { readonly _tag: "Schema"; readonly schema: SchemaRef.Any }

/**
 * What a codec is resolved for. `"write"` (producers): a registry backend registers the schema under the topic's
 * subject (or looks it up), so that `encode` can name its id. `"read"` (consumers): nothing is registered or looked
 * up by subject (a consumer never registers a schema); `decode` reads each message's writer schema by its id. A
 * codec resolved for reading may refuse to encode.
 *
 * @since 0.1.0
 */
export type Use = "read" | "write"

/**
 * A schema resolved for one topic: synchronous functions over what resolving found. `A` is what `decode` answers
 * (the payload type of the handle; for a `Field` key, the field's value).
 *
 * @since 0.1.0
 */
export interface Codec<A> {
  /** The schema's full name, for messages. */
  readonly schema: string
  /** The full topic (prefix applied) the codec was resolved for. */
  readonly topic: string
  /**
   * Converts loosely-typed input (numeric strings, dates, …) to what the schema expects; what it cannot convert is
   * left as it is, for `encode` to report.
   */
  readonly coerce: (input: unknown) => unknown
  /** Checks a payload against the schema; a `Validation` error lists every problem with its field path. */
  readonly validate: (payload: unknown) => Either.Either<void, SchemaError.SchemaError>
  /** Validates and encodes a (coerced) payload. */
  readonly encode: (payload: unknown) => Either.Either<Uint8Array, SchemaError.SchemaError>
  /** Decodes bytes whose writer schema the codec knows (see `load`). */
  readonly decode: (bytes: Uint8Array) => Either.Either<A, SchemaError.SchemaError>
  /**
   * The I/O `decode` needs before it can read these bytes (a writer schema id it has not met, fetched once and
   * cached), or `undefined` when `decode` can answer now.
   */
  readonly load: (bytes: Uint8Array) => Effect.Effect<void, SchemaError.SchemaError> | undefined
}

/**
 * @since 0.1.0
 */
export declare namespace SchemaBackend {
  /**
   * The service shape every schema backend implements. Build one with {@link make}, which caches the codecs.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** Backend name, e.g. `mock`, `json`, `avroLocal`. */
    readonly name: string
    /** The codec of a value schema on a topic (the full topic: a registry derives the subject from it). */
    readonly codec: <A, I>(
      schema: SchemaRef.SchemaRef<A, I>,
      topic: string,
      use: Use
    ) => Effect.Effect<Codec<A>, SchemaError.SchemaError>
    /** The codec of a key; for `Field` keys it encodes and decodes the field's value. */
    readonly keyCodec: (
      key: KeySchema,
      topic: string,
      use: Use
    ) => Effect.Effect<Codec<unknown>, SchemaError.SchemaError>
    /** The fields of a record schema. */
    readonly fields: (schema: SchemaRef.Any) => Effect.Effect<ReadonlyArray<SchemaField>, SchemaError.SchemaError>
  }

  /**
   * What a backend implements; {@link make} adds the caching.
   *
   * @since 0.1.0
   */
  export interface Resolvers {
    readonly name: string
    readonly codec: (
      schema: SchemaRef.Any,
      topic: string,
      use: Use
    ) => Effect.Effect<Codec<unknown>, SchemaError.SchemaError>
    readonly keyCodec: (
      key: KeySchema,
      topic: string,
      use: Use
    ) => Effect.Effect<Codec<unknown>, SchemaError.SchemaError>
    readonly fields: (schema: SchemaRef.Any) => Effect.Effect<ReadonlyArray<SchemaField>, SchemaError.SchemaError>
  }
}

/**
 * @since 0.1.0
 * @category tags
 */
export class SchemaBackend extends Context.Tag("@deimos/core/SchemaBackend")<
  SchemaBackend,
  SchemaBackend.Service
>() {}

/**
 * A backend from its resolvers: codecs are resolved once per schema handle and topic (per backend instance) and
 * kept; a failed resolution is tried again on the next call (a registry that was down is asked again).
 *
 * @since 0.1.0
 */
export const make = (resolvers: SchemaBackend.Resolvers): SchemaBackend.Service => {
  // per handle (weakly held), then per what else the codec depends on
  const resolved = new WeakMap<SchemaRef.Any, Map<string, Codec<unknown>>>()
  const cached = (
    ref: SchemaRef.Any,
    key: string,
    resolve: () => Effect.Effect<Codec<unknown>, SchemaError.SchemaError>
  ): Effect.Effect<Codec<unknown>, SchemaError.SchemaError> =>
    Effect.suspend(() => {
      const known = resolved.get(ref)?.get(key)
      if (known !== undefined) return Effect.succeed(known)
      return Effect.tap(resolve(), (codec) =>
        Effect.sync(() => {
          let byKey = resolved.get(ref)
          if (byKey === undefined) resolved.set(ref, byKey = new Map())
          byKey.set(key, codec)
        }))
    })
  return {
    name: resolvers.name,
    codec: <A, I>(schema: SchemaRef.SchemaRef<A, I>, topic: string, use: Use) =>
      cached(schema, `value\u0000${use}\u0000${topic}`, () => resolvers.codec(schema, topic, use)) as Effect.Effect<
        Codec<A>,
        SchemaError.SchemaError
      >,
    keyCodec: (key, topic, use) =>
      key._tag === "Field"
        ? cached(
          key.valueSchema,
          `field\u0000${key.field}\u0000${use}\u0000${topic}`,
          () => resolvers.keyCodec(key, topic, use)
        )
        : cached(key.schema, `key\u0000${use}\u0000${topic}`, () => resolvers.keyCodec(key, topic, use)),
    fields: resolvers.fields
  }
}

/**
 * Decodes with a codec, fetching what it needs first (a writer schema it has not met).
 *
 * @since 0.1.0
 */
export const decodeWith = <A>(codec: Codec<A>, bytes: Uint8Array): Effect.Effect<A, SchemaError.SchemaError> => {
  const load = codec.load(bytes)
  return load === undefined ? codec.decode(bytes) : Effect.zipRight(load, Effect.suspend(() => codec.decode(bytes)))
}

/**
 * Coerces, validates and encodes a payload with the backend in context (resolving the codec, cached).
 *
 * @since 0.1.0
 */
export const encode = <A, I>(
  schema: SchemaRef.SchemaRef<A, I>,
  topic: string,
  payload: unknown
): Effect.Effect<Uint8Array, SchemaError.SchemaError, SchemaBackend> =>
  SchemaBackend.pipe(
    Effect.flatMap((backend) => backend.codec(schema, topic, "write")),
    Effect.flatMap((codec) => codec.encode(codec.coerce(payload)))
  )

/**
 * Decodes bytes with the backend in context (resolving the codec, cached).
 *
 * @since 0.1.0
 */
export const decode = <A, I>(
  schema: SchemaRef.SchemaRef<A, I>,
  topic: string,
  bytes: Uint8Array
): Effect.Effect<A, SchemaError.SchemaError, SchemaBackend> =>
  SchemaBackend.pipe(
    Effect.flatMap((backend) => backend.codec(schema, topic, "read")),
    Effect.flatMap((codec) => decodeWith(codec, bytes))
  )
