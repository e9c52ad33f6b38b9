/**
 * The mock schema backend: no validation, no coercion; bytes are tagged JSON. Every answer is an `Exit` (see
 * `Eager`): the pipelines encode and decode with it without fiber steps.
 */
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as AST from "effect/SchemaAST"
import * as Eager from "../Eager.js"
import type { KeySchema, SchemaBackend, SchemaField } from "../SchemaBackend.js"
import * as SchemaError from "../SchemaError.js"
import * as SchemaRef from "../SchemaRef.js"
import { coerce, fieldsOf, issuesOf, propertyOf, sqlTypeOf } from "./effectSchema.js"
import * as TaggedJson from "./taggedJson.js"

// try/catch returning an Exit: this runs per message, and allocates no closure
const decodeBytes = (
  bytes: Uint8Array,
  what: string,
  schema: string,
  topic: string
): Exit.Exit<unknown, SchemaError.SchemaError> => {
  try {
    return Exit.succeed(TaggedJson.decode(bytes))
  } catch (cause) {
    return Exit.fail(
      new SchemaError.SchemaError({
        reason: what === "key" ? "Key" : "Decode",
        schema,
        topic,
        cause,
        message: `Cannot decode ${what} of topic ${topic} as JSON (mock backend)`
      })
    )
  }
}

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
  encode: (payload) => Eager.sync(() => TaggedJson.encode(payload)),
  decode: (bytes, { schema, topic }) => decodeBytes(bytes, "payload", schema.fullName, topic),
  validate: () => Exit.void,
  coerce: (payload) => Exit.succeed(payload),
  schemaFields: (schema) => Eager.sync(() => fieldsFromRef(schema)),
  encodeKey: (key) => Eager.sync(() => TaggedJson.encode(key)),
  decodeKey: (bytes, { key, topic }) =>
    decodeBytes(bytes, "key", key._tag === "Field" ? key.valueSchema.fullName : key.schema.fullName, topic)
})

/**
 * The validating mock: bytes are tagged JSON like the mock, but payloads and keys are validated (on the type side)
 * and coerced with the Effect Schema attached to the schema handle, when there is one.
 */
export const makeValidating = (): SchemaBackend.Service => {
  const plain = make()
  // one validator per schema AST (a memo of pure functions: dropping it changes nothing but speed)
  const validators = new WeakMap<AST.AST, (u: unknown) => Either.Either<unknown, ParseResult.ParseError>>()
  const validatorOf = (ast: AST.AST) => {
    let validator = validators.get(ast)
    if (validator === undefined) {
      validators.set(
        ast,
        validator = Schema.validateEither(Schema.make(ast), { errors: "all", onExcessProperty: "error" })
      )
    }
    return validator
  }
  const check = (
    ast: AST.AST | undefined,
    value: unknown,
    name: string,
    topic?: string,
    field?: string
  ): Exit.Exit<unknown, SchemaError.SchemaError> => {
    if (ast === undefined) return Exit.succeed(value)
    const result = validatorOf(ast)(value)
    return Either.isRight(result) ? Exit.succeed(result.right) : Exit.fail(
      SchemaError.validation({
        schema: name,
        topic,
        issues: issuesOf(result.left).map((i) => field === undefined ? i : { ...i, path: [field, ...i.path] }),
        cause: result.left
      })
    )
  }
  const fieldOf = (key: KeySchema) => key._tag === "Field" ? key.field : undefined
  // `Schema.typeSchema` builds a new AST on each call: one per handle and key spec, so the validators above hit
  const typeAsts = new WeakMap<SchemaRef.Any | KeySchema, AST.AST | undefined>()
  const memo = <K extends SchemaRef.Any | KeySchema>(k: K, build: (k: K) => AST.AST | undefined) => {
    if (typeAsts.has(k)) return typeAsts.get(k)
    const ast = build(k)
    typeAsts.set(k, ast)
    return ast
  }
  const typeAst = (ref: SchemaRef.Any) =>
    memo(ref, (r) => r.schema === undefined ? undefined : Schema.typeSchema(r.schema).ast)
  const keyAst = (key: KeySchema) =>
    memo(key, (k) =>
      k._tag === "Schema"
        ? typeAst(k.schema)
        : k.valueSchema.schema === undefined
        ? undefined
        : propertyOf(Schema.typeSchema(k.valueSchema.schema), k.field))
  const keyName = (key: KeySchema) => key._tag === "Schema" ? key.schema.fullName : `${key.valueSchema.fullName}_key`
  return {
    ...plain,
    name: "mockValidating",
    encode: (payload, options) =>
      Eager.flatMap(
        check(typeAst(options.schema), payload, options.schema.fullName, options.topic),
        () => plain.encode(payload, options)
      ),
    decode: (bytes, options) =>
      Eager.flatMap(
        plain.decode(bytes, options),
        (value) => check(typeAst(options.schema), value, options.schema.fullName, options.topic)
      ),
    validate: (payload, schema) => Eager.map(check(typeAst(schema), payload, schema.fullName), () => undefined),
    coerce: (payload, schema) => {
      const ast = typeAst(schema)
      return Exit.succeed(ast === undefined ? payload : coerce(ast, payload))
    },
    encodeKey: (key, options) => {
      const ast = keyAst(options.key)
      return Eager.flatMap(
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
      Eager.flatMap(
        plain.decodeKey(bytes, options),
        (value) => check(keyAst(options.key), value, keyName(options.key), options.topic, fieldOf(options.key))
      )
  }
}
