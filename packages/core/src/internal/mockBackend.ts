/**
 * The mock schema backend: no validation, no coercion; bytes are tagged JSON.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as AST from "effect/SchemaAST"
import type { KeySchema, SchemaBackend, SchemaField } from "../SchemaBackend.js"
import * as SchemaError from "../SchemaError.js"
import * as SchemaRef from "../SchemaRef.js"
import { coerce, fieldsOf, issuesOf, propertyOf, sqlTypeOf } from "./effectSchema.js"
import * as TaggedJson from "./taggedJson.js"

const decodeBytes = (bytes: Uint8Array, what: string, schema: string, topic: string) =>
  Effect.try({
    try: () => TaggedJson.decode(bytes),
    catch: (cause) =>
      new SchemaError.SchemaError({
        reason: what === "key" ? "Key" : "Decode",
        schema,
        topic,
        cause,
        message: `Cannot decode ${what} of topic ${topic} as JSON (mock backend)`
      })
  })

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

/** Fields from the attached Effect Schema, else from the attached Avro schema. */
export const fieldsFromRef = (ref: SchemaRef.Any): ReadonlyArray<SchemaField> => {
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
          default: f.default,
          sqlType: sqlTypeOf(d.type, d.logicalType)
        }
      })
  })
}

export const make = (): SchemaBackend.Service => ({
  name: "mock",
  encode: (payload) => Effect.sync(() => TaggedJson.encode(payload)),
  decode: (bytes, { schema, topic }) => decodeBytes(bytes, "payload", schema.fullName, topic),
  validate: () => Effect.void,
  coerce: (payload) => Effect.succeed(payload),
  schemaFields: (schema) => Effect.sync(() => fieldsFromRef(schema)),
  encodeKey: (key) => Effect.sync(() => TaggedJson.encode(key)),
  decodeKey: (bytes, { key, topic }) =>
    decodeBytes(bytes, "key", key._tag === "Field" ? key.valueSchema.fullName : key.schema.fullName, topic)
})

/**
 * The validating mock: bytes are tagged JSON like the mock, but payloads and keys are validated (on the type side)
 * and coerced with the Effect Schema attached to the schema handle, when there is one.
 */
export const makeValidating = (): SchemaBackend.Service => {
  const plain = make()
  const check = (
    ast: AST.AST | undefined,
    value: unknown,
    name: string,
    topic?: string,
    field?: string
  ) =>
    ast === undefined
      ? Effect.succeed(value)
      : Schema.validate(Schema.make(ast))(value, { errors: "all", onExcessProperty: "error" }).pipe(
        Effect.mapError((e) =>
          SchemaError.validation({
            schema: name,
            topic,
            issues: issuesOf(e).map((i) => field === undefined ? i : { ...i, path: [field, ...i.path] }),
            cause: e
          })
        )
      )
  const fieldOf = (key: KeySchema) => key._tag === "Field" ? key.field : undefined
  const typeAst = (ref: SchemaRef.Any) => ref.schema === undefined ? undefined : Schema.typeSchema(ref.schema).ast
  const keyAst = (key: KeySchema) =>
    key._tag === "Schema"
      ? typeAst(key.schema)
      : key.valueSchema.schema === undefined
      ? undefined
      : propertyOf(Schema.typeSchema(key.valueSchema.schema), key.field)
  const keyName = (key: KeySchema) => key._tag === "Schema" ? key.schema.fullName : `${key.valueSchema.fullName}_key`
  return {
    ...plain,
    name: "mockValidating",
    encode: (payload, options) =>
      Effect.flatMap(
        check(typeAst(options.schema), payload, options.schema.fullName, options.topic),
        () => plain.encode(payload, options)
      ),
    decode: (bytes, options) =>
      Effect.flatMap(
        plain.decode(bytes, options),
        (value) => check(typeAst(options.schema), value, options.schema.fullName, options.topic)
      ),
    validate: (payload, schema) => Effect.asVoid(check(typeAst(schema), payload, schema.fullName)),
    coerce: (payload, schema) => {
      const ast = typeAst(schema)
      return Effect.succeed(ast === undefined ? payload : coerce(ast, payload))
    },
    encodeKey: (key, options) => {
      const ast = keyAst(options.key)
      return Effect.flatMap(
        check(
          ast,
          ast === undefined ? key : coerce(ast, key),
          keyName(options.key),
          options.topic,
          fieldOf(options.key)
        ),
        (checked) => plain.encodeKey(checked, options)
      )
    },
    decodeKey: (bytes, options) =>
      Effect.flatMap(
        plain.decodeKey(bytes, options),
        (value) => check(keyAst(options.key), value, keyName(options.key), options.topic, fieldOf(options.key))
      )
  }
}
