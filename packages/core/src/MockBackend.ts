/**
 * The mock schema backends, for tests and prototypes: bytes are JSON that keeps dates, bigints and byte arrays.
 * `mock` checks nothing; `mockValidating` (the test layer's default) validates and coerces payloads and keys with
 * the Effect Schema attached to each schema handle (handles without one pass unchecked).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as AST from "effect/SchemaAST"
import { coerce, fieldsOf, issuesOf, propertyOf } from "./internal/effectSchema.js"
import * as TaggedJson from "./internal/taggedJson.js"
import * as SchemaBackend from "./SchemaBackend.js"
import * as SchemaError from "./SchemaError.js"
import * as SchemaRef from "./SchemaRef.js"

const avroType = (t: unknown): { type: string; logicalType?: string; nullable: boolean } => {
  if (typeof t === "string") return { type: t, nullable: t === "null" }
  if (Array.isArray(t)) {
    const members = t.filter((m) => m !== "null")
    const nullable = members.length < t.length
    return members.length === 1 ? { ...avroType(members[0]), nullable } : { type: "union", nullable }
  }
  if (typeof t === "object" && t !== null) {
    const o = t as { type?: unknown; logicalType?: unknown }
    const inner = avroType(o.type)
    return typeof o.logicalType === "string" ? { ...inner, logicalType: o.logicalType } : inner
  }
  return { type: "unknown", nullable: false }
}

/**
 * The fields of a handle: from its Effect Schema, else from its attached Avro schema.
 *
 * @since 0.1.0
 */
export const fieldsOfRef = (ref: SchemaRef.Any): ReadonlyArray<SchemaBackend.SchemaField> => {
  if (ref.schema !== undefined) return fieldsOf(ref.schema)
  return Option.match(SchemaRef.avroFields(ref), {
    onNone: () => [],
    onSome: (fields) =>
      fields.map((f) => {
        const d = avroType(f.type)
        const symbols = typeof f.type === "object" && f.type !== null && "symbols" in f.type
          ? (f.type as { symbols: ReadonlyArray<string> }).symbols
          : undefined
        return {
          name: String(f.name),
          type: d.type,
          logicalType: d.logicalType,
          nullable: d.nullable,
          symbols,
          hasDefault: "default" in f,
          default: f.default
        }
      })
  })
}

const ok = Either.right(undefined)
const noLoad = () => undefined

/** The mock's bytes of a value; a value JSON cannot hold (a cycle) is an `Encode` error. */
const encodeJson = (
  value: unknown,
  schema: string,
  topic: string
): Either.Either<Uint8Array, SchemaError.SchemaError> => {
  try {
    return Either.right(TaggedJson.encode(value))
  } catch (cause) {
    return Either.left(
      new SchemaError.SchemaError({
        reason: "Encode",
        schema,
        topic,
        cause,
        message: `Cannot encode a ${schema} for ${topic} as JSON (mock backend): ${String(cause)}`
      })
    )
  }
}

const decodeJson = (
  bytes: Uint8Array,
  what: "payload" | "key",
  schema: string,
  topic: string
): Either.Either<unknown, SchemaError.SchemaError> => {
  try {
    return Either.right(TaggedJson.decode(bytes))
  } catch (cause) {
    return Either.left(
      new SchemaError.SchemaError({
        reason: what === "key" ? "Key" : "Decode",
        schema,
        topic,
        cause,
        message: `Cannot decode a ${what} of topic ${topic} as JSON (mock backend)`
      })
    )
  }
}

const keyName = (key: SchemaBackend.KeySchema) =>
  key._tag === "Schema" ? key.schema.fullName : SchemaRef.keySchemaName(key.valueSchema)

/** A codec that writes the mock's JSON and checks values with `check` (the type side of an Effect Schema). */
const jsonCodec = (
  schema: string,
  topic: string,
  what: "payload" | "key",
  check: ((value: unknown) => Either.Either<unknown, SchemaError.SchemaError>) | undefined,
  coerceValue: (input: unknown) => unknown
): SchemaBackend.Codec<unknown> => {
  if (check === undefined) {
    return {
      schema,
      topic,
      coerce: coerceValue,
      validate: () => ok,
      encode: (payload) => encodeJson(payload, schema, topic),
      decode: (bytes) => decodeJson(bytes, what, schema, topic),
      load: noLoad
    }
  }
  return {
    schema,
    topic,
    coerce: coerceValue,
    validate: (payload) => Either.map(check(payload), () => undefined),
    encode: (payload) => Either.flatMap(check(payload), () => encodeJson(payload, schema, topic)),
    decode: (bytes) => Either.flatMap(decodeJson(bytes, what, schema, topic), check),
    load: noLoad
  }
}

const identity = (u: unknown) => u

/**
 * The mock backend: no validation, no coercion.
 *
 * @since 0.1.0
 */
export const mock: SchemaBackend.SchemaBackend.Service = SchemaBackend.make({
  name: "mock",
  codec: (ref, topic) => Effect.succeed(jsonCodec(ref.fullName, topic, "payload", undefined, identity)),
  keyCodec: (key, topic) => Effect.succeed(jsonCodec(keyName(key), topic, "key", undefined, identity)),
  fields: (ref) => Effect.sync(() => fieldsOfRef(ref))
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMock: Layer.Layer<SchemaBackend.SchemaBackend> = Layer.succeed(SchemaBackend.SchemaBackend, mock)

/** The check of a type-side AST: the value (as validated) or a `Validation` error with field paths. */
const checkOf = (ast: AST.AST, schema: string, topic: string, field?: string) => {
  const validate = Schema.validateEither(Schema.make(ast), { errors: "all", onExcessProperty: "error" })
  return (value: unknown): Either.Either<unknown, SchemaError.SchemaError> =>
    Either.mapLeft(validate(value), (error) =>
      SchemaError.validation({
        schema,
        topic,
        issues: issuesOf(error).map((i) => field === undefined ? i : { ...i, path: [field, ...i.path] }),
        cause: error
      }))
}

const validatingCodec = (ref: SchemaRef.Any, topic: string): SchemaBackend.Codec<unknown> => {
  if (ref.schema === undefined) return jsonCodec(ref.fullName, topic, "payload", undefined, identity)
  const ast = Schema.typeSchema(ref.schema).ast
  return jsonCodec(ref.fullName, topic, "payload", checkOf(ast, ref.fullName, topic), (u) => coerce(ast, u))
}

const validatingKeyCodec = (
  key: SchemaBackend.KeySchema,
  topic: string
): Either.Either<SchemaBackend.Codec<unknown>, SchemaError.SchemaError> => {
  const name = keyName(key)
  if (key._tag === "Schema") return Either.right({ ...validatingCodec(key.schema, topic), schema: name })
  const valueSchema = key.valueSchema.schema
  if (valueSchema === undefined) return Either.right(jsonCodec(name, topic, "key", undefined, identity))
  const ast = propertyOf(Schema.typeSchema(valueSchema), key.field)
  if (ast === undefined) {
    return Either.left(
      new SchemaError.SchemaError({
        reason: "Key",
        schema: key.valueSchema.fullName,
        topic,
        message: `Key field "${key.field}" is not a field of schema ${key.valueSchema.fullName}`
      })
    )
  }
  return Either.right(jsonCodec(name, topic, "key", checkOf(ast, name, topic, key.field), (u) => coerce(ast, u)))
}

/**
 * The validating mock: bytes like the mock, but payloads and keys are validated (on the type side) and coerced with
 * the Effect Schema attached to the schema handle, when there is one. The default of the test layer.
 *
 * @since 0.1.0
 */
export const mockValidating: SchemaBackend.SchemaBackend.Service = SchemaBackend.make({
  name: "mockValidating",
  codec: (ref, topic) => Effect.sync(() => validatingCodec(ref, topic)),
  keyCodec: (key, topic) => Effect.suspend(() => validatingKeyCodec(key, topic)),
  fields: (ref) => Effect.sync(() => fieldsOfRef(ref))
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMockValidating: Layer.Layer<SchemaBackend.SchemaBackend> = Layer.succeed(
  SchemaBackend.SchemaBackend,
  mockValidating
)
