/**
 * What the three Avro backends share: resolving schema handles to avsc types (from `ref.avro` or a schema
 * directory) and key schemas, validation with field paths, writing and reading Avro bodies, and the handle's side
 * of a codec (coercion, the wire value of a payload, the reader of decoded values). Everything here is synchronous
 * and answers with `Either`: the codecs are plain code over what it resolves once.
 */
import { type SchemaBackend, SchemaError, type SchemaRef } from "@deimos/core"
import type avro from "avsc"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as AST from "effect/SchemaAST"
import { typeOf } from "./avsc.js"
import * as Bridge from "./bridge.js"
import { type ToBuffers, toBuffers } from "./buffers.js"
import * as Coerce from "./coerce.js"
import { fieldsOf } from "./fields.js"
import * as Longs from "./longs.js"
import { collectNamed, fullNameOf, loadDirectory, type Named, writtenOut } from "./schemas.js"
import { type Typed, typedReader } from "./typed.js"
import { type Finder, finder, type Path } from "./undeclared.js"

/** A schema resolved to its avsc type, with what encoding and coercion need of it. */
export interface Resolved {
  readonly name: string
  readonly type: avro.Type
  readonly json: { readonly [key: string]: unknown }
  readonly namespace: string | undefined
  /**
   * The schema as written, standing on its own (referenced named types written out, every attribute kept, keys in
   * canonical order), as JSON text: what the registry backend registers.
   */
  readonly schemaString: string
  /** Finds undeclared fields at any depth; undefined when the schema holds no record. */
  readonly undeclared: Finder | undefined
  /** Turns `Uint8Array`s into the `Buffer`s avsc wants; undefined when the schema holds no bytes or fixed. */
  readonly buffers: ToBuffers | undefined
  /** The named types its JSON can refer to (the directory's, and the handle's own). */
  readonly named: ReadonlyMap<string, Named>
}

type AnySchema = Schema.Schema<unknown, unknown>
type Parse = (u: unknown) => Either.Either<unknown, ParseResult.ParseError>

/** A handle's Effect Schema: the compiled bridge when it has one, Effect Schema's own functions otherwise. */
interface Compiled {
  readonly bridge: Bridge.Bridge | undefined
  /** The bridge that keeps `Date`s (checks only), for writers that convert them. */
  readonly checks: Bridge.Bridge | undefined
  readonly encode: Parse
  readonly decode: Parse
}

/** How a handle's Effect Schema meets the wire: both ways synchronous. */
export interface SchemaSide {
  readonly ast: AST.AST
  readonly toWire: (payload: unknown) => Either.Either<unknown, SchemaError.SchemaError>
  readonly fromWire: (wire: unknown) => Either.Either<unknown, SchemaError.SchemaError>
}

/** A value handle or key schema resolved for one topic: what its codec runs per message. */
export interface Handle {
  /** The Avro schema (registered, and the reader in resolutions). */
  readonly resolved: Resolved
  /** What bodies are written with: the schema with the typed reader's type when there is one. */
  readonly writer: Resolved
  readonly coerce: Coerce.Coerce
  /** The value `writer` writes for a payload; undefined when it is the payload (no Effect Schema). */
  readonly toWire: ((payload: unknown) => Either.Either<unknown, SchemaError.SchemaError>) | undefined
  /** The avsc type bodies are read with: the typed reader when there is one, else the Avro type. */
  readonly reader: avro.Type
  /** The payload of a value read; undefined when the value read is the payload. */
  readonly fromRead: ((value: unknown) => Either.Either<unknown, SchemaError.SchemaError>) | undefined
}

const noPath: Path = []

export const decodeError = (schema: string, topic: string, message: string, cause?: unknown) =>
  new SchemaError.SchemaError({ reason: "Decode", schema, topic, cause, message })

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

const parseIssues = (error: ParseResult.ParseError): ReadonlyArray<SchemaError.Issue> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((i) => ({
    path: i.path.map((p) => typeof p === "symbol" ? String(p) : p),
    message: i.message
  }))

/** A parse failure as a `SchemaError`: `Validation` with the issues, or `Encode`/`Decode` for an async Schema. */
const parseFailure = (
  name: string,
  topic: string | undefined,
  error: ParseResult.ParseError,
  direction: "Encode" | "Decode"
) =>
  isForbidden(error.issue)
    ? new SchemaError.SchemaError({
      reason: direction,
      schema: name,
      topic,
      cause: error,
      message: `The Effect Schema of ${name} is asynchronous; schema backends run Schemas synchronously`
    })
    : SchemaError.validation({ schema: name, topic, issues: parseIssues(error), cause: error })

/** The wire value avsc accepts: `Uint8Array`s at bytes and fixed positions turned into `Buffer`s. */
const toAvsc = (resolved: Resolved, value: unknown): unknown =>
  resolved.buffers === undefined ? value : resolved.buffers(value)

/** Every problem of a wire value, with its field path (undeclared fields too, at any depth). */
export const issuesOf = (resolved: Resolved, input: unknown): Array<SchemaError.Issue> => {
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
          : `expected ${String(type.typeName)}, got ${Longs.show(any)}`
      })
    }
  })
  return issues
}

const valid = Either.right(undefined)

/** Validates a wire value, listing every problem with its field path. */
export const validateWire = (
  resolved: Resolved,
  value: unknown,
  topic: string
): Either.Either<void, SchemaError.SchemaError> => {
  const issues = issuesOf(resolved, value)
  return issues.length === 0 ? valid : Either.left(SchemaError.validation({ schema: resolved.name, topic, issues }))
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
export const encodeInto = (
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
    return resolved.type.encode(toAvsc(resolved, value), buffer, offset)
  } catch (cause) {
    return encodeFailure(resolved, value, topic, cause)
  }
}

/** Validates and encodes a wire value into a buffer of its own. */
export const encodeBody = (
  resolved: Resolved,
  value: unknown,
  topic: string
): Either.Either<Buffer, SchemaError.SchemaError> => {
  if (resolved.undeclared !== undefined && resolved.undeclared(value, noPath, undefined)) {
    return Either.left(encodeFailure(resolved, value, topic))
  }
  try {
    return Either.right(resolved.type.toBuffer(toAvsc(resolved, value)))
  } catch (cause) {
    return Either.left(encodeFailure(resolved, value, topic, cause))
  }
}

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
): Either.Either<unknown, SchemaError.SchemaError> => {
  let problem: string
  let cause: unknown = undefined
  try {
    const read = type.decode(buffer, offset, resolver)
    if (read.offset === buffer.length) return Either.right(read.value)
    problem = read.offset < 0 ? "truncated buffer" : `trailing data after byte ${read.offset}`
  } catch (error) {
    problem = String(error)
    cause = error
  }
  return Either.left(
    decodeError(
      schema,
      topic,
      `Cannot decode a ${what} on ${topic} (${buffer.length} bytes) as ${schema}: ${problem}`,
      cause
    )
  )
}

/** The name of the key schema of a key: `<Schema>_key` for `Field` keys, the key schema's name otherwise. */
export const keyName = (key: SchemaBackend.KeySchema): string =>
  key._tag === "Field" ? `${key.valueSchema.fullName}_key` : key.schema.fullName

/** What the Avro backends share (see {@link makeCommon}). */
export interface Common {
  /** The avsc type of a handle; successes are kept per handle. */
  readonly resolveRef: (ref: SchemaRef.Any, topic?: string) => Either.Either<Resolved, SchemaError.SchemaError>
  /** The key schema: `<Schema>_key` with the one field for `Field` keys, the given schema for `Schema` keys. */
  readonly resolveKey: (key: SchemaBackend.KeySchema, topic: string) => Either.Either<Resolved, SchemaError.SchemaError>
  /** The Effect Schema side of a handle, undefined without one. */
  readonly schemaSide: (ref: SchemaRef.Any, topic: string) => SchemaSide | undefined
  /** A value handle resolved for one topic. */
  readonly handleOf: (ref: SchemaRef.Any, resolved: Resolved, topic: string) => Handle
  /** A key resolved for one topic: a `Field` key's value goes in and comes out of the `<Schema>_key` record. */
  readonly keyHandleOf: (key: SchemaBackend.KeySchema, resolved: Resolved, topic: string) => Handle
  readonly fields: (
    ref: SchemaRef.Any
  ) => Either.Either<ReadonlyArray<SchemaBackend.SchemaField>, SchemaError.SchemaError>
}

/**
 * What the Avro backends share, over the `.avsc` files of `schemaDirs`; fails with an `UnknownSchema` error naming
 * the file when one cannot be loaded (bad JSON, a type it references that no file defines, a type defined twice).
 */
export const makeCommon = (schemaDirs: ReadonlyArray<string>): Either.Either<Common, SchemaError.SchemaError> => {
  const loaded = loadDirectory(schemaDirs)
  if (!("registry" in loaded)) {
    return Either.left(
      new SchemaError.SchemaError({
        reason: "UnknownSchema",
        schema: loaded.file,
        cause: loaded.cause,
        message: `Cannot load the Avro schemas: ${loaded.message}`
      })
    )
  }
  const directory = loaded
  const named = directory.named
  const byRef = new WeakMap<SchemaRef.Any, Resolved>()
  const keyTypes = new Map<string, Resolved>()
  const compiled = new WeakMap<AnySchema, Compiled>()
  const typedReaders = new WeakMap<Resolved, WeakMap<AST.AST, Typed | null>>()

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
    schemaString: JSON.stringify(writtenOut(json, names, name)),
    undeclared: finder(type),
    buffers: toBuffers(type),
    named: names
  })

  const unknown = (ref: SchemaRef.Any, topic?: string) =>
    new SchemaError.SchemaError({
      reason: "UnknownSchema",
      schema: ref.fullName,
      topic,
      message: `Avro schema ${ref.fullName} not found: it is not attached to the schema handle and no ${
        ref.fullName.split(".").pop()
      }.avsc defines it in ${schemaDirs.length === 0 ? "(no schema directory configured)" : directory.searched()}`
    })

  const resolveUncached = (ref: SchemaRef.Any, topic?: string): Either.Either<Resolved, SchemaError.SchemaError> => {
    if (ref.avro !== undefined) {
      try {
        const json = (typeof ref.avro === "string" ? JSON.parse(ref.avro) : ref.avro) as { [key: string]: unknown }
        const own = new Map<string, Named>()
        collectNamed(json, undefined, "(schema handle)", own)
        // the handle's own definitions win over same-named ones from the directory
        const registry: { [name: string]: avro.Type } = {}
        for (const [n, t] of Object.entries(directory.registry)) if (!own.has(n)) registry[n] = t
        const type = typeOf(json, { registry })
        return Either.right(make(fullNameOf(json, undefined), json, type, new Map([...named, ...own])))
      } catch (cause) {
        return Either.left(
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
    if (type === undefined || def === undefined) return Either.left(unknown(ref, topic))
    return Either.right(make(ref.fullName, def.json, type, named))
  }

  /** The avsc type of a handle; successes are kept per handle. */
  const resolveRef = (ref: SchemaRef.Any, topic?: string): Either.Either<Resolved, SchemaError.SchemaError> => {
    const cached = byRef.get(ref)
    if (cached !== undefined) return Either.right(cached)
    const resolved = resolveUncached(ref, topic)
    if (Either.isRight(resolved)) byRef.set(ref, resolved.right)
    return resolved
  }

  const keyError = (schema: string, topic: string, message: string, cause?: unknown) =>
    new SchemaError.SchemaError({ reason: "Key", schema, topic, cause, message })

  /** The value schema's declaration of a `Field` key's field, when the value schema has it. */
  const keyFieldOf = (value: Resolved, field: string) =>
    ((value.json.fields as ReadonlyArray<{ readonly name: string; readonly type: unknown }>) ?? [])
      .find((f) => f.name === field)

  /** The key schema: `<Schema>_key` with the one field for `Field` keys, the given schema for `Schema` keys. */
  const resolveKey = (
    key: SchemaBackend.KeySchema,
    topic: string
  ): Either.Either<Resolved, SchemaError.SchemaError> => {
    if (key._tag === "Schema") return resolveRef(key.schema, topic)
    return Either.flatMap(resolveRef(key.valueSchema, topic), (value) => {
      const id = `${value.name}\u0000${key.field}`
      const cached = keyTypes.get(id)
      if (cached !== undefined) return Either.right(cached)
      const field = keyFieldOf(value, key.field)
      if (field === undefined) {
        return Either.left(
          keyError(value.name, topic, `Key field "${key.field}" is not a field of schema ${value.name}`)
        )
      }
      try {
        // the field's type as the value schema declares it (logical types kept), with the named types it references
        // written out, so that the key schema stands on its own
        const declared = {
          type: "record",
          name: `${value.name.split(".").pop()}_key`,
          ...(value.namespace === undefined ? {} : { namespace: value.namespace }),
          fields: [{ name: key.field, type: field.type }],
          doc: `Key of ${value.name}`
        }
        const fullName = fullNameOf(declared, undefined)
        const json = writtenOut(declared, value.named, fullName) as { readonly [key: string]: unknown }
        const type = typeOf(json)
        const resolved = make(fullName, json, type, value.named)
        keyTypes.set(id, resolved)
        return Either.right(resolved)
      } catch (cause) {
        return Either.left(
          keyError(value.name, topic, `Cannot build the key schema of ${value.name}: ${String(cause)}`, cause)
        )
      }
    })
  }

  const encodeOptions = { errors: "all", onExcessProperty: "error" } as const
  const decodeOptions = { errors: "all" } as const

  const compiledOf = (schema: AnySchema): Compiled => {
    let known = compiled.get(schema)
    if (known === undefined) {
      known = {
        bridge: Bridge.compile(schema.ast),
        checks: Bridge.compile(schema.ast, { keepDates: true }),
        encode: Schema.encodeUnknownEither(schema, encodeOptions),
        decode: Schema.decodeUnknownEither(schema, decodeOptions)
      }
      compiled.set(schema, known)
    }
    return known
  }

  /**
   * The Effect Schema side of a handle, undefined without one: the compiled bridge when the Schema is made of the
   * pieces it knows, else Effect Schema (whose errors carry the detailed issues).
   */
  const schemaSide = (ref: SchemaRef.Any, topic: string): SchemaSide | undefined => {
    const schema = ref.schema as AnySchema | undefined
    if (schema === undefined) return undefined
    const c = compiledOf(schema)
    const name = ref.fullName
    const bridge = c.bridge
    const slowEncode = (payload: unknown) =>
      Either.mapLeft(c.encode(payload), (e) => parseFailure(name, topic, e, "Encode"))
    const slowDecode = (wire: unknown) => Either.mapLeft(c.decode(wire), (e) => parseFailure(name, topic, e, "Decode"))
    if (bridge === undefined) return { ast: schema.ast, toWire: slowEncode, fromWire: slowDecode }
    return {
      ast: schema.ast,
      toWire: (payload) => {
        const fast = bridge.encode(payload)
        return fast === Bridge.bail ? slowEncode(payload) : Either.right(fast)
      },
      fromWire: (wire) => {
        const fast = bridge.decode(wire)
        return fast === Bridge.bail ? slowDecode(wire) : Either.right(fast)
      }
    }
  }

  /** The typed reader of a resolved schema for an Effect Schema (null when there is none), kept per pair. */
  const typedReaderOf = (resolved: Resolved, ast: AST.AST): Typed | undefined => {
    let byAst = typedReaders.get(resolved)
    if (byAst === undefined) typedReaders.set(resolved, byAst = new WeakMap())
    let reader = byAst.get(ast)
    if (reader === undefined) {
      reader = typedReader(resolved.type, ast) ?? null
      byAst.set(ast, reader)
    }
    return reader ?? undefined
  }

  /**
   * A value handle for one topic: coercion by its Avro schema and the type side of its Effect Schema, the wire
   * value through the Schema, and its reader (the typed reader when the Schema's decoded values can be read
   * directly, else the Avro type and the Schema's decode after it). With a typed reader that turns numbers into
   * `Date`s, bodies are written with it too: it writes a `Date` as its number, so a payload the Schema accepts
   * (checked by the bridge that keeps `Date`s) is written as it is, without building its wire form; a payload it
   * does not take goes through the Schema's encode (whose numbers the typed writer writes as they are).
   */
  const handleOf = (ref: SchemaRef.Any, resolved: Resolved, topic: string): Handle => {
    const side = schemaSide(ref, topic)
    const coerce = Coerce.compile(resolved.json, side?.ast, resolved.named, resolved.namespace)
    if (side === undefined) {
      return { resolved, writer: resolved, coerce, toWire: undefined, reader: resolved.type, fromRead: undefined }
    }
    const typed = typedReaderOf(resolved, side.ast)
    if (typed === undefined) {
      return { resolved, writer: resolved, coerce, toWire: side.toWire, reader: resolved.type, fromRead: side.fromWire }
    }
    const checks = compiledOf(ref.schema as AnySchema).checks
    if (typed.type === resolved.type || checks === undefined) {
      return { resolved, writer: resolved, coerce, toWire: side.toWire, reader: typed.type, fromRead: undefined }
    }
    const toWire = side.toWire
    return {
      resolved,
      // the Schema refuses excess properties: when its Structs declare only fields of their records, a payload it
      // takes has no undeclared field, and that check is left out
      writer: { ...resolved, type: typed.type, undeclared: typed.exact ? undefined : resolved.undeclared },
      coerce,
      toWire: (payload) => {
        const checked = checks.encode(payload)
        return checked === Bridge.bail ? toWire(payload) : Either.right(checked)
      },
      reader: typed.type,
      fromRead: undefined
    }
  }

  /**
   * A key for one topic: a `Field` key is the one field of the `<Schema>_key` record (coerced on the Avro side of
   * the field); a key schema of its own is a value handle.
   */
  const keyHandleOf = (
    key: SchemaBackend.KeySchema,
    resolved: Resolved,
    topic: string
  ): Handle => {
    if (key._tag === "Schema") return handleOf(key.schema, resolved, topic)
    const field = key.field
    // coerced with the value schema's declaration of the field (its logical type included)
    const value = Either.getOrUndefined(resolveRef(key.valueSchema, topic))
    const declared = value === undefined ? undefined : keyFieldOf(value, field)
    const coerce = declared === undefined
      ? Coerce.compile(
        (resolved.json.fields as ReadonlyArray<{ readonly type: unknown }>)[0].type,
        undefined,
        resolved.named,
        resolved.namespace
      )
      : Coerce.compile(declared.type, undefined, value!.named, value!.namespace)
    return {
      resolved,
      writer: resolved,
      coerce,
      toWire: (v) => Either.right({ [field]: v }),
      reader: resolved.type,
      fromRead: (record) => Either.right((record as Record<string, unknown>)[field])
    }
  }

  return Either.right({
    resolveRef,
    resolveKey,
    schemaSide,
    handleOf,
    keyHandleOf,
    fields: (ref) => Either.map(resolveRef(ref), (r) => fieldsOf(r.json, r.named, r.namespace))
  })
}
