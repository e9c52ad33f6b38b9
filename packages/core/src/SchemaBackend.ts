/**
 * The schema backend port: validates, coerces, encodes and decodes payloads and keys. Bytes are `Uint8Array`; no
 * driver types cross this port. Avro backends live in `@deimos/avro` and implement this port unchanged.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as internalEffectSchema from "./internal/effectSchema.js"
import * as internalJson from "./internal/jsonBackend.js"
import * as internalMock from "./internal/mockBackend.js"
import type * as SchemaError from "./SchemaError.js"
import type * as SchemaRef from "./SchemaRef.js"

/**
 * One field of a record schema, as reported by `schemaFields`.
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
  /** The PostgreSQL column type this field maps to. */
  readonly sqlType: string
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
 * Options of `encode` / `decode`. `topic` is the full topic name (prefix applied); registry backends derive the
 * subject from it.
 *
 * @since 0.1.0
 */
export interface CodecOptions {
  readonly schema: SchemaRef.Any
  readonly topic: string
}

/**
 * Options of `encodeKey` / `decodeKey`.
 *
 * @since 0.1.0
 */
export interface KeyOptions {
  readonly key: KeySchema
  readonly topic: string
}

/**
 * @since 0.1.0
 */
export declare namespace SchemaBackend {
  /**
   * The service shape every schema backend implements.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** Backend name, e.g. `mock`, `json`, `avroLocal`. */
    readonly name: string
    /** Validates then encodes a (coerced) payload. */
    readonly encode: (payload: unknown, options: CodecOptions) => Effect.Effect<Uint8Array, SchemaError.SchemaError>
    /** Decodes bytes into the payload type of `options.schema`. */
    readonly decode: (bytes: Uint8Array, options: CodecOptions) => Effect.Effect<unknown, SchemaError.SchemaError>
    /** Checks a payload against the schema; fails with a `Validation` error listing field paths. */
    readonly validate: (payload: unknown, schema: SchemaRef.Any) => Effect.Effect<void, SchemaError.SchemaError>
    /** Converts loosely-typed input (numeric strings, dates, …) to what the schema expects. */
    readonly coerce: (payload: unknown, schema: SchemaRef.Any) => Effect.Effect<unknown, SchemaError.SchemaError>
    /** The fields of a record schema. */
    readonly schemaFields: (
      schema: SchemaRef.Any
    ) => Effect.Effect<ReadonlyArray<SchemaField>, SchemaError.SchemaError>
    /** Encodes a key (the field value for `Field` keys, the whole key for `Schema` keys). */
    readonly encodeKey: (key: unknown, options: KeyOptions) => Effect.Effect<Uint8Array, SchemaError.SchemaError>
    /** Decodes a key; for `Field` keys returns the field value. */
    readonly decodeKey: (bytes: Uint8Array, options: KeyOptions) => Effect.Effect<unknown, SchemaError.SchemaError>
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
 * The mock backend: no validation; bytes are JSON that keeps dates, bigints and byte arrays.
 *
 * @since 0.1.0
 */
export const mock: SchemaBackend.Service = internalMock.make()

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMock: Layer.Layer<SchemaBackend> = Layer.succeed(SchemaBackend, mock)

/**
 * A JSON backend driven by the Effect `Schema` attached to each schema handle: validates and decodes with the
 * Schema; bytes are UTF-8 JSON of the encoded form.
 *
 * @since 0.1.0
 */
export const json: SchemaBackend.Service = internalJson.make()

/**
 * @since 0.1.0
 * @category layers
 */
export const layerJson: Layer.Layer<SchemaBackend> = Layer.succeed(SchemaBackend, json)

/**
 * The validating mock: bytes like the mock, but payloads and keys are validated and coerced with the Effect Schema
 * attached to each schema handle (handles without one pass unchecked). The default of the test layer.
 *
 * @since 0.1.0
 */
export const mockValidating: SchemaBackend.Service = internalMock.makeValidating()

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMockValidating: Layer.Layer<SchemaBackend> = Layer.succeed(SchemaBackend, mockValidating)

/**
 * The PostgreSQL column type of an Avro-style type and logical type (for `SchemaField.sqlType`).
 *
 * @since 0.1.0
 */
export const sqlTypeOf: (type: string, logicalType: string | undefined) => string = internalEffectSchema.sqlTypeOf
