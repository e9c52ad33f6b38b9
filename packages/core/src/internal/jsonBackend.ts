/**
 * The JSON schema backend: validates, coerces, encodes and decodes with the Effect Schema attached to each schema
 * handle. Bytes are UTF-8 JSON of the schema's encoded form.
 */
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { KeySchema, SchemaBackend } from "../SchemaBackend.js"
import * as SchemaError from "../SchemaError.js"
import type * as SchemaRef from "../SchemaRef.js"
import { coerce, fieldsOf, issuesOf, propertyOf } from "./effectSchema.js"
import * as TaggedJson from "./taggedJson.js"

type AnySchema = Schema.Schema<unknown, unknown>

const schemaOf = (ref: SchemaRef.Any, topic?: string): Effect.Effect<AnySchema, SchemaError.SchemaError> =>
  ref.schema === undefined
    ? Effect.fail(
      new SchemaError.SchemaError({
        reason: "UnknownSchema",
        schema: ref.fullName,
        topic,
        message:
          `Schema ${ref.fullName} carries no Effect Schema; the JSON backend needs one (SchemaRef.fromSchema(schema, { name }))`
      })
    )
    : Effect.succeed(ref.schema as AnySchema)

const toValidation = (name: string, topic: string | undefined) => (error: ParseResult.ParseError) =>
  SchemaError.validation({ schema: name, topic, issues: issuesOf(error), cause: error })

const keySchemaOf = (
  key: KeySchema,
  topic: string
): Effect.Effect<{ readonly name: string; readonly schema: AnySchema }, SchemaError.SchemaError> => {
  if (key._tag === "Schema") {
    return Effect.map(schemaOf(key.schema, topic), (schema) => ({ name: key.schema.fullName, schema }))
  }
  return Effect.flatMap(schemaOf(key.valueSchema, topic), (schema) => {
    const field = propertyOf(schema, key.field)
    return field === undefined
      ? Effect.fail(
        new SchemaError.SchemaError({
          reason: "Key",
          schema: key.valueSchema.fullName,
          topic,
          message: `Key field "${key.field}" is not a field of schema ${key.valueSchema.fullName}`
        })
      )
      : Effect.succeed({
        name: `${key.valueSchema.fullName}_key`,
        schema: Schema.make(field) as AnySchema
      })
  })
}

const parseBytes = (bytes: Uint8Array, name: string, topic: string, reason: "Decode" | "Key") =>
  Effect.try({
    try: () => TaggedJson.decodePlain(bytes),
    catch: (cause) =>
      new SchemaError.SchemaError({ reason, schema: name, topic, cause, message: `Bytes are not valid JSON (${name})` })
  })

export const make = (): SchemaBackend.Service => ({
  name: "json",
  encode: (payload, { schema: ref, topic }) =>
    schemaOf(ref, topic).pipe(
      Effect.flatMap((schema) => Schema.encodeUnknown(schema)(payload, { errors: "all", onExcessProperty: "error" })),
      Effect.mapError((e) => e instanceof ParseResult.ParseError ? toValidation(ref.fullName, topic)(e) : e),
      Effect.map(TaggedJson.encodePlain)
    ),
  decode: (bytes, { schema: ref, topic }) =>
    schemaOf(ref, topic).pipe(
      Effect.flatMap((schema) =>
        parseBytes(bytes, ref.fullName, topic, "Decode").pipe(
          Effect.flatMap((json) =>
            Effect.mapError(Schema.decodeUnknown(schema)(json, { errors: "all" }), toValidation(ref.fullName, topic))
          )
        )
      )
    ),
  validate: (payload, ref) =>
    schemaOf(ref).pipe(
      Effect.flatMap((schema) =>
        Effect.mapError(
          Schema.encodeUnknown(schema)(payload, { errors: "all", onExcessProperty: "error" }),
          toValidation(ref.fullName, undefined)
        )
      ),
      Effect.asVoid
    ),
  coerce: (payload, ref) => Effect.map(schemaOf(ref), (schema) => coerce(Schema.typeSchema(schema).ast, payload)),
  schemaFields: (ref) => Effect.map(schemaOf(ref), fieldsOf),
  encodeKey: (key, { key: spec, topic }) =>
    keySchemaOf(spec, topic).pipe(
      Effect.flatMap(({ name, schema }) =>
        Schema.encodeUnknown(schema)(coerce(Schema.typeSchema(schema).ast, key), { errors: "all" }).pipe(
          Effect.mapError(toValidation(name, topic)),
          Effect.map((encoded) => TaggedJson.encodePlain(spec._tag === "Field" ? { [spec.field]: encoded } : encoded))
        )
      )
    ),
  decodeKey: (bytes, { key: spec, topic }) =>
    keySchemaOf(spec, topic).pipe(
      Effect.flatMap(({ name, schema }) =>
        parseBytes(bytes, name, topic, "Key").pipe(
          Effect.map((json) =>
            spec._tag === "Field" && typeof json === "object" && json !== null
              ? (json as Record<string, unknown>)[spec.field]
              : json
          ),
          Effect.flatMap((json) =>
            Effect.mapError(Schema.decodeUnknown(schema)(json, { errors: "all" }), toValidation(name, topic))
          )
        )
      )
    )
})
