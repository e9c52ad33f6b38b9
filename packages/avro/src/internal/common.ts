/**
 * What the three Avro backends share: resolving schema handles to avsc types (from `ref.avro` or a schema
 * directory), key schemas, validation with field paths, the Effect Schema bridge, coercion, fields.
 *
 * The hot path (a cached handle, a cached registry id) is synchronous and answers with an `Exit`, which is an
 * `Effect`: one fiber step per call instead of a chain of `flatMap`s. Resolutions are cached as `Exit`s too, so a
 * cache hit allocates nothing.
 */
import { Eager, type SchemaBackend, SchemaError, type SchemaRef } from "@deimos/core"
import avro from "avsc"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Bridge from "./bridge.js"
import { type ToBuffers, toBuffers } from "./buffers.js"
import { collectNamed, fullNameOf, loadDirectory, type Named, type SchemaDirectory } from "./schemas.js"
import { type Finder, finder, type Path } from "./undeclared.js"
import * as Walk from "./walk.js"

export interface Resolved {
  readonly name: string
  readonly type: avro.Type
  readonly json: { readonly [key: string]: unknown }
  readonly namespace: string | undefined
  /** JSON string of the schema, for registration. */
  readonly schemaString: string
  /** Finds undeclared fields at any depth; undefined when the schema holds no record. */
  readonly undeclared: Finder | undefined
  /** Turns `Uint8Array`s into the `Buffer`s avsc wants; undefined when the schema holds no bytes or fixed. */
  readonly buffers: ToBuffers | undefined
  /** The named types its JSON can refer to (the directory's, and the handle's own). */
  readonly named: ReadonlyMap<string, Named>
}

type AnySchema = Schema.Schema<unknown, unknown>
type Codec = (u: unknown) => Either.Either<unknown, ParseResult.ParseError>

/** How a handle's Effect Schema meets the wire: the compiled bridge when it has one, Effect Schema otherwise. */
interface Codecs {
  readonly bridge: Bridge.Bridge | undefined
  readonly encode: Codec
  readonly decode: Codec
}

const noPath: Path = []

/** Does a parse issue contain `Forbidden` (an asynchronous schema run synchronously)? */
const isForbidden = (issue: ParseResult.ParseIssue): boolean => {
  switch (issue._tag) {
    case "Forbidden":
      return true
    case "Composite":
      return Array.isArray(issue.issues)
        ? issue.issues.some(isForbidden)
        : isForbidden(issue.issues as ParseResult.ParseIssue)
    case "Pointer":
    case "Refinement":
    case "Transformation":
      return isForbidden(issue.issue)
    default:
      return false
  }
}

/** The wire value avsc accepts: `Uint8Array`s at bytes and fixed positions turned into `Buffer`s. */
const toAvsc = (resolved: Resolved, value: unknown): unknown =>
  resolved.buffers === undefined ? value : resolved.buffers(value)

/**
 * What the Avro backends share, over the `.avsc` files of `schemaDirs`; fails with an `UnknownSchema` error naming
 * the file when one cannot be loaded (bad JSON, a type it references that no file defines, a type defined twice).
 */
export const makeCommon = (schemaDirs: ReadonlyArray<string>): Exit.Exit<Common, SchemaError.SchemaError> => {
  const loaded = loadDirectory(schemaDirs)
  if (!("registry" in loaded)) {
    return Exit.fail(
      new SchemaError.SchemaError({
        reason: "UnknownSchema",
        schema: loaded.file,
        cause: loaded.cause,
        message: `Cannot load the Avro schemas: ${loaded.message}`
      })
    )
  }
  return Exit.succeed(commonOf(schemaDirs, loaded))
}

const commonOf = (schemaDirs: ReadonlyArray<string>, directory: SchemaDirectory) => {
  const named = directory.named
  const byRef = new WeakMap<SchemaRef.Any, Exit.Exit<Resolved, SchemaError.SchemaError>>()
  const keyTypes = new Map<string, Resolved>()
  const codecs = new WeakMap<AnySchema, Codecs>()

  const make = (
    name: string,
    json: { readonly [key: string]: unknown },
    type: avro.Type,
    names: ReadonlyMap<string, Named>
  ): Resolved => ({
    name,
    type,
    json,
    namespace: name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : undefined,
    schemaString: JSON.stringify(type.schema({ exportAttrs: true })),
    undeclared: finder(type),
    buffers: toBuffers(type),
    named: names
  })

  const unknown = (ref: SchemaRef.Any, topic?: string, cause?: unknown) =>
    new SchemaError.SchemaError({
      reason: "UnknownSchema",
      schema: ref.fullName,
      topic,
      cause,
      message: `Avro schema ${ref.fullName} not found: it is not attached to the schema handle and no ${
        ref.fullName.split(".").pop()
      }.avsc defines it in ${schemaDirs.length === 0 ? "(no schema directory configured)" : directory.searched()}`
    })

  const resolveUncached = (ref: SchemaRef.Any, topic?: string): Exit.Exit<Resolved, SchemaError.SchemaError> => {
    if (ref.avro !== undefined) {
      try {
        const json = (typeof ref.avro === "string" ? JSON.parse(ref.avro) : ref.avro) as { [key: string]: unknown }
        const own = new Map<string, Named>()
        collectNamed(json, undefined, "(schema handle)", own)
        // the handle's own definitions win over same-named ones from the directory
        const registry: { [name: string]: avro.Type } = {}
        for (const [n, t] of Object.entries(directory.registry)) if (!own.has(n)) registry[n] = t
        const type = avro.Type.forSchema(json as avro.Schema, { registry })
        return Exit.succeed(make(fullNameOf(json, undefined), json, type, new Map([...named, ...own])))
      } catch (cause) {
        return Exit.fail(
          new SchemaError.SchemaError({
            reason: "UnknownSchema",
            schema: ref.fullName,
            topic,
            cause,
            message: `The Avro schema attached to ${ref.fullName} is invalid: ${String(cause)}`
          })
        )
      }
    }
    const type = directory.type(ref.fullName)
    const def = named.get(ref.fullName)
    if (type === undefined || def === undefined) return Exit.fail(unknown(ref, topic))
    return Exit.succeed(make(ref.fullName, def.json, type, named))
  }

  /** The avsc type of a handle (an `Exit`, so usable as an Effect); successes are cached per handle. */
  const resolveRef = (ref: SchemaRef.Any, topic?: string): Exit.Exit<Resolved, SchemaError.SchemaError> => {
    const cached = byRef.get(ref)
    if (cached !== undefined) return cached
    const resolved = resolveUncached(ref, topic)
    if (Exit.isSuccess(resolved)) byRef.set(ref, resolved)
    return resolved
  }

  const keyError = (schema: string, topic: string, message: string, cause?: unknown) =>
    new SchemaError.SchemaError({ reason: "Key", schema, topic, cause, message })

  /** The key schema: `<Schema>_key` with the one field for `Field` keys, the given schema for `Schema` keys. */
  const resolveKey = (
    key: SchemaBackend.KeySchema,
    topic: string
  ): Exit.Exit<Resolved, SchemaError.SchemaError> => {
    if (key._tag === "Schema") return resolveRef(key.schema, topic)
    const valueExit = resolveRef(key.valueSchema, topic)
    if (Exit.isFailure(valueExit)) return valueExit
    const value = valueExit.value
    const id = `${value.name}\u0000${key.field}`
    const cached = keyTypes.get(id)
    if (cached !== undefined) return Exit.succeed(cached)
    const field = ((value.json.fields as ReadonlyArray<{ readonly name: string; readonly type: unknown }>) ?? [])
      .find((f) => f.name === key.field)
    if (field === undefined) {
      return Exit.fail(keyError(value.name, topic, `Key field "${key.field}" is not a field of schema ${value.name}`))
    }
    try {
      const fieldType = (value.type as avro.types.RecordType).field?.(key.field)?.type
      const json = {
        type: "record",
        name: `${value.name.split(".").pop()}_key`,
        ...(value.namespace === undefined ? {} : { namespace: value.namespace }),
        fields: [{ name: key.field, type: fieldType?.schema({ exportAttrs: true }) ?? field.type }],
        doc: `Key of ${value.name}`
      }
      const type = avro.Type.forSchema(json as avro.Schema, { registry: { ...directory.registry } })
      const resolved = make(fullNameOf(json, undefined), json, type, value.named)
      keyTypes.set(id, resolved)
      return Exit.succeed(resolved)
    } catch (cause) {
      return Exit.fail(keyError(value.name, topic, `Cannot build the key schema of ${value.name}: ${String(cause)}`))
    }
  }

  /** Every problem of a wire value, with its field path (undeclared fields too, at any depth). */
  const issuesOf = (resolved: Resolved, input: unknown): Array<SchemaError.Issue> => {
    const value = toAvsc(resolved, input)
    const issues: Array<SchemaError.Issue> = []
    if (resolved.undeclared !== undefined) {
      const paths: Array<Path> = []
      resolved.undeclared(value, noPath, paths)
      for (const path of paths) issues.push({ path, message: "undeclared field" })
    }
    resolved.type.isValid(value, {
      errorHook: (path: Array<string>, any: unknown, type: avro.Type) => {
        issues.push({
          path,
          message: any === undefined
            ? `missing required field (${String(type.typeName)})`
            : `expected ${String(type.typeName)}, got ${JSON.stringify(any)?.slice(0, 80) ?? String(any)}`
        })
      }
    })
    return issues
  }

  /** Validates a wire value, listing every problem with its field path. */
  const validateWire = (
    resolved: Resolved,
    value: unknown,
    topic?: string
  ): Exit.Exit<void, SchemaError.SchemaError> => {
    const issues = issuesOf(resolved, value)
    return issues.length === 0
      ? Exit.void
      : Exit.fail(SchemaError.validation({ schema: resolved.name, topic, issues }))
  }

  const encodeFailure = (resolved: Resolved, value: unknown, topic: string, cause?: unknown) => {
    const issues = issuesOf(resolved, value)
    return issues.length > 0
      ? SchemaError.validation({ schema: resolved.name, topic, issues, cause })
      : new SchemaError.SchemaError({
        reason: "Encode",
        schema: resolved.name,
        topic,
        cause,
        message: `Cannot encode a ${resolved.name} for ${topic}: ${String(cause)}`
      })
  }

  /**
   * Validates and encodes a wire value into `buffer` at `offset`; returns the end offset, or a negative number (the
   * bytes missing) when `buffer` is too small, or the error. avsc's writer rejects every value that does not match
   * (and fills defaults), except undeclared fields, which are looked for first; the detailed validation (each issue
   * with its path) only runs on failure.
   */
  const encodeInto = (
    resolved: Resolved,
    value: unknown,
    buffer: Buffer,
    offset: number,
    topic: string
  ): number | SchemaError.SchemaError => {
    if (resolved.undeclared !== undefined && resolved.undeclared(value, noPath, undefined)) {
      return encodeFailure(resolved, value, topic)
    }
    try {
      return resolved.type.encode(resolved.buffers === undefined ? value : resolved.buffers(value), buffer, offset)
    } catch (cause) {
      return encodeFailure(resolved, value, topic, cause)
    }
  }

  /** Validates and encodes a wire value into a buffer of its own. */
  const encodeBody = (
    resolved: Resolved,
    value: unknown,
    topic: string
  ): Exit.Exit<Buffer, SchemaError.SchemaError> => {
    if (resolved.undeclared !== undefined && resolved.undeclared(value, noPath, undefined)) {
      return Exit.fail(encodeFailure(resolved, value, topic))
    }
    try {
      return Exit.succeed(resolved.type.toBuffer(toAvsc(resolved, value)))
    } catch (cause) {
      return Exit.fail(encodeFailure(resolved, value, topic, cause))
    }
  }

  /**
   * The wire value as a reader gets it: written and read back by avsc (defaults filled, the values avsc reads),
   * for the validating backend, which sends no Avro bytes but must hand consumers what the real backends do.
   */
  const roundTrip = (
    resolved: Resolved,
    value: unknown,
    topic: string
  ): Exit.Exit<unknown, SchemaError.SchemaError> =>
    Exit.flatMap(
      encodeBody(resolved, value, topic),
      (body) => readBody(resolved.type, undefined, body, 0, resolved.name, topic, "message")
    )

  const parseIssues = (error: ParseResult.ParseError): ReadonlyArray<SchemaError.Issue> =>
    ParseResult.ArrayFormatter.formatErrorSync(error).map((i) => ({
      path: i.path.map((p) => typeof p === "symbol" ? String(p) : p),
      message: i.message
    }))

  const parseFailure = (ref: SchemaRef.Any, topic: string | undefined, e: ParseResult.ParseError) =>
    SchemaError.validation({ schema: ref.fullName, topic, issues: parseIssues(e), cause: e })

  const encodeOptions = { errors: "all", onExcessProperty: "error" } as const
  const decodeOptions = { errors: "all" } as const

  const codecsOf = (schema: AnySchema): Codecs => {
    let known = codecs.get(schema)
    if (known === undefined) {
      known = {
        bridge: Bridge.compile(schema.ast),
        encode: Schema.encodeUnknownEither(schema, encodeOptions),
        decode: Schema.decodeUnknownEither(schema, decodeOptions)
      }
      codecs.set(schema, known)
    }
    return known
  }

  /**
   * The wire value of a payload: through the handle's Effect Schema when attached (the compiled bridge when the
   * Schema is made of the pieces it knows, else Effect Schema). Synchronous (an `Exit`) unless the Schema is
   * asynchronous.
   */
  const toWire = (
    ref: SchemaRef.Any,
    payload: unknown,
    topic?: string
  ): Effect.Effect<unknown, SchemaError.SchemaError> => {
    const schema = ref.schema as AnySchema | undefined
    if (schema === undefined) return Exit.succeed(payload)
    const c = codecsOf(schema)
    if (c.bridge !== undefined) {
      const fast = c.bridge.encode(payload)
      if (fast !== Bridge.bail) return Exit.succeed(fast)
    }
    const result = c.encode(payload)
    if (Either.isRight(result)) return Exit.succeed(result.right)
    if (isForbidden(result.left.issue)) {
      return Effect.mapError(
        Schema.encodeUnknown(schema, encodeOptions)(payload),
        (e) => parseFailure(ref, topic, e)
      )
    }
    return Exit.fail(parseFailure(ref, topic, result.left))
  }

  /** The payload of a wire value: through the handle's Effect Schema when attached. */
  const fromWire = (
    ref: SchemaRef.Any,
    value: unknown,
    topic?: string
  ): Effect.Effect<unknown, SchemaError.SchemaError> => {
    const schema = ref.schema as AnySchema | undefined
    if (schema === undefined) return Exit.succeed(value)
    const c = codecsOf(schema)
    if (c.bridge !== undefined) {
      const fast = c.bridge.decode(value)
      if (fast !== Bridge.bail) return Exit.succeed(fast)
    }
    const result = c.decode(value)
    if (Either.isRight(result)) return Exit.succeed(result.right)
    if (isForbidden(result.left.issue)) {
      return Effect.mapError(Schema.decodeUnknown(schema, decodeOptions)(value), (e) => parseFailure(ref, topic, e))
    }
    return Exit.fail(parseFailure(ref, topic, result.left))
  }

  /**
   * Coerces a payload (REFERENCE §1) by its Avro schema, which knows the units of logical types, and, for handles
   * with an Effect Schema, by the type side of that Schema, which knows what the payload holds (a `Date` where
   * `Schema.DateFromNumber` makes millis of it, a number of micros where the Schema is a plain `Int`).
   */
  const coerce = (payload: unknown, ref: SchemaRef.Any): Exit.Exit<unknown, SchemaError.SchemaError> => {
    const resolved = resolveRef(ref)
    if (Exit.isFailure(resolved)) return resolved
    const r = resolved.value
    return Exit.succeed(Walk.coerceTyped(r.json, ref.schema?.ast, payload, r.named, r.namespace))
  }

  const keyWire = (key: SchemaBackend.KeySchema, value: unknown): unknown =>
    key._tag === "Field" ? { [key.field]: value } : value

  /** The key of a decoded key record: the field value for `Field` keys. */
  const keyValue = (key: SchemaBackend.KeySchema, value: unknown): unknown =>
    key._tag === "Field" && typeof value === "object" && value !== null
      ? (value as Record<string, unknown>)[key.field]
      : value

  /**
   * The key schema and the coerced wire value of a key: a `Field` key becomes the one-field key record; a key
   * schema with an Effect Schema goes through it (coerced on its type side), others are coerced on the Avro side.
   */
  const keyToWire = (
    key: SchemaBackend.KeySchema,
    value: unknown,
    topic: string
  ): Effect.Effect<{ readonly resolved: Resolved; readonly wire: unknown }, SchemaError.SchemaError> =>
    Eager.flatMap(resolveKey(key, topic), (resolved) =>
      key._tag === "Schema" && key.schema.schema !== undefined
        ? Eager.map(
          toWire(
            key.schema,
            Walk.coerceTyped(resolved.json, key.schema.schema.ast, value, resolved.named, resolved.namespace),
            topic
          ),
          (wire) => ({ resolved, wire })
        )
        : Exit.succeed({
          resolved,
          wire: Walk.coerce(resolved.json, keyWire(key, value), resolved.named, resolved.namespace)
        }))

  /** The key of a decoded key record: through the key schema's Effect Schema when attached. */
  const keyFromWire = (
    key: SchemaBackend.KeySchema,
    value: unknown,
    topic: string
  ): Effect.Effect<unknown, SchemaError.SchemaError> =>
    key._tag === "Schema" ? fromWire(key.schema, value, topic) : Exit.succeed(keyValue(key, value))

  return {
    directory,
    resolveRef,
    resolveKey,
    validateWire,
    encodeInto,
    encodeBody,
    roundTrip,
    toWire,
    fromWire,
    coerce,
    keyToWire,
    keyFromWire,
    schemaFields: (ref: SchemaRef.Any) => Exit.map(resolveRef(ref), (r) => Walk.fields(r.json, r.named, r.namespace)),
    /** Validates a payload: the Effect Schema when attached, then Avro. */
    validate: (payload: unknown, ref: SchemaRef.Any, topic?: string) =>
      Eager.flatMap(
        toWire(ref, payload, topic),
        (wire) => Eager.flatMap(resolveRef(ref, topic), (r) => validateWire(r, wire, topic))
      )
  }
}

export type Common = ReturnType<typeof commonOf>

export const decodeError = (schema: string, topic: string, message: string, cause?: unknown) =>
  new SchemaError.SchemaError({ reason: "Decode", schema, topic, cause, message })

/** A failure, retyped for the success type of the caller (a failure holds no value). */
export const failed = <A>(
  exit: Exit.Failure<unknown, SchemaError.SchemaError>
): Exit.Exit<A, SchemaError.SchemaError> => exit as Exit.Failure<never, SchemaError.SchemaError>

/**
 * Reads one value of `type` from `buffer` at `offset` (with a resolver for a different writer schema): every byte
 * must be consumed; truncated, trailing or random bytes are a `Decode` error, never a crash. `what` names the bytes
 * in the error (`message` / `key`).
 */
export const readBody = (
  type: avro.Type,
  resolver: avro.Resolver | undefined,
  buffer: Buffer,
  offset: number,
  schema: string,
  topic: string,
  what: string
): Exit.Exit<unknown, SchemaError.SchemaError> => {
  let problem: string
  let cause: unknown = undefined
  try {
    const { offset: end, value } = type.decode(buffer, offset, resolver)
    if (end === buffer.length) return Exit.succeed(value)
    problem = end < 0 ? "truncated buffer" : `trailing data after byte ${end}`
  } catch (error) {
    problem = String(error)
    cause = error
  }
  return Exit.fail(
    decodeError(
      schema,
      topic,
      `Cannot decode a ${what} on ${topic} (${buffer.length} bytes) as ${schema}: ${problem}`,
      cause
    )
  )
}
