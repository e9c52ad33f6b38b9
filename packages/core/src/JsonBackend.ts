/**
 * The JSON schema backend, for apps without Avro: payloads and keys are validated, coerced, encoded and decoded
 * with the Effect Schema attached to each schema handle; the bytes are UTF-8 JSON of the Schema's encoded form.
 * A handle without an Effect Schema cannot be resolved (an `UnknownSchema` error when the codec is asked for).
 * Schemas must be synchronous.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { coerce, fieldsOf, issuesOf, propertyOf } from "./internal/effectSchema.js"
import * as TaggedJson from "./internal/taggedJson.js"
import * as SchemaBackend from "./SchemaBackend.js"
import * as SchemaError from "./SchemaError.js"
import * as SchemaRef from "./SchemaRef.js"

type AnySchema = Schema.Schema<unknown, unknown>

const schemaOf = (ref: SchemaRef.Any, topic?: string): Either.Either<AnySchema, SchemaError.SchemaError> =>
  ref.schema === undefined
    ? Either.left(
      new SchemaError.SchemaError({
        reason: "UnknownSchema",
        schema: ref.fullName,
        topic,
        message:
          `Schema ${ref.fullName} carries no Effect Schema; the JSON backend needs one (SchemaRef.fromSchema(schema, { name }))`
      })
    )
    : Either.right(ref.schema as AnySchema)

const encodeOptions = { errors: "all", onExcessProperty: "error" } as const
const decodeOptions = { errors: "all" } as const

/** A codec over one Effect Schema; `wrap`/`unwrap` turn a field key's value into its one-field record and back. */
const codecOf = (
  schema: AnySchema,
  name: string,
  topic: string,
  what: "Decode" | "Key",
  wrap: (encoded: unknown) => unknown,
  unwrap: (json: unknown) => unknown
): SchemaBackend.Codec<unknown> => {
  const typeAst = Schema.typeSchema(schema).ast
  const encodeSchema = Schema.encodeUnknownEither(schema, encodeOptions)
  const decodeSchema = Schema.decodeUnknownEither(schema, decodeOptions)
  const invalid = (error: ParseResult.ParseError) =>
    SchemaError.validation({ schema: name, topic, issues: issuesOf(error), cause: error })
  const parse = (bytes: Uint8Array): Either.Either<unknown, SchemaError.SchemaError> => {
    try {
      return Either.right(TaggedJson.decodePlain(bytes))
    } catch (cause) {
      return Either.left(
        new SchemaError.SchemaError({
          reason: what,
          schema: name,
          topic,
          cause,
          message: `Bytes are not valid JSON (${name})`
        })
      )
    }
  }
  return {
    schema: name,
    topic,
    coerce: (input) => coerce(typeAst, input),
    validate: (payload) => Either.mapBoth(encodeSchema(payload), { onLeft: invalid, onRight: () => undefined }),
    encode: (payload) =>
      Either.mapBoth(encodeSchema(payload), {
        onLeft: invalid,
        onRight: (encoded) => TaggedJson.encodePlain(wrap(encoded))
      }),
    decode: (bytes) => Either.flatMap(parse(bytes), (json) => Either.mapLeft(decodeSchema(unwrap(json)), invalid)),
    load: () => undefined
  }
}

const same = (u: unknown) => u

const keyCodecOf = (
  key: SchemaBackend.KeySchema,
  topic: string
): Either.Either<SchemaBackend.Codec<unknown>, SchemaError.SchemaError> => {
  if (key._tag === "Schema") {
    return Either.map(
      schemaOf(key.schema, topic),
      (schema) => codecOf(schema, key.schema.fullName, topic, "Key", same, same)
    )
  }
  const { field, valueSchema } = key
  return Either.flatMap(schemaOf(valueSchema, topic), (schema) => {
    const ast = propertyOf(schema, field)
    if (ast === undefined) {
      return Either.left(
        new SchemaError.SchemaError({
          reason: "Key",
          schema: valueSchema.fullName,
          topic,
          message: `Key field "${field}" is not a field of schema ${valueSchema.fullName}`
        })
      )
    }
    return Either.right(
      codecOf(
        Schema.make(ast) as AnySchema,
        SchemaRef.keySchemaName(valueSchema),
        topic,
        "Key",
        (encoded) => ({ [field]: encoded }),
        (json) => typeof json === "object" && json !== null ? (json as Record<string, unknown>)[field] : json
      )
    )
  })
}

/**
 * The JSON backend.
 *
 * @since 0.1.0
 */
export const json: SchemaBackend.SchemaBackend.Service = SchemaBackend.make({
  name: "json",
  codec: (ref, topic) =>
    Effect.suspend(() =>
      Either.map(schemaOf(ref, topic), (schema) => codecOf(schema, ref.fullName, topic, "Decode", same, same))
    ),
  keyCodec: (key, topic) => Effect.suspend(() => keyCodecOf(key, topic)),
  fields: (ref) => Effect.suspend(() => Either.map(schemaOf(ref), fieldsOf))
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<SchemaBackend.SchemaBackend> = Layer.succeed(SchemaBackend.SchemaBackend, json)
