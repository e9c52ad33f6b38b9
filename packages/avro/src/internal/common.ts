/**
 * What the three Avro backends share: resolving schema handles to avsc types (from `ref.avro` or a schema
 * directory), key schemas, validation with field paths, the Effect Schema bridge, coercion, fields.
 */
import { SchemaBackend, SchemaError, type SchemaRef } from "@deimos/core"
import avro from "avsc"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { collectNamed, fullNameOf, type Named, SchemaDirectory } from "./schemas.js"
import * as Walk from "./walk.js"

export interface Resolved {
  readonly name: string
  readonly type: avro.Type
  readonly json: { readonly [key: string]: unknown }
  readonly namespace: string | undefined
  /** Canonical-ish JSON string of the schema, for registration. */
  readonly schemaString: string
  /** Top-level field names (records). */
  readonly fieldNames: ReadonlySet<string>
  /** Top-level fields with defaults (records). */
  readonly defaults: ReadonlyArray<{ readonly name: string; readonly default: unknown }>
}

type AnySchema = Schema.Schema<unknown, unknown>

export const makeCommon = (schemaDirs: ReadonlyArray<string>) => {
  const directory = new SchemaDirectory(schemaDirs)
  const named = new Map<string, Named>(directory.named)
  const byRef = new WeakMap<SchemaRef.Any, Resolved>()
  const keyTypes = new Map<string, Resolved>()

  const make = (name: string, json: { readonly [key: string]: unknown }, type: avro.Type): Resolved => ({
    name,
    type,
    json,
    namespace: name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : undefined,
    schemaString: JSON.stringify(type.schema({ exportAttrs: true })),
    fieldNames: new Set(((json.fields as ReadonlyArray<{ readonly name: string }>) ?? []).map((f) => f.name)),
    defaults: ((json.fields as ReadonlyArray<{ readonly name: string; readonly default?: unknown }>) ?? [])
      .filter((f) => "default" in f)
      .map((f) => ({ name: f.name, default: f.default }))
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

  const resolveRef = (ref: SchemaRef.Any, topic?: string): Effect.Effect<Resolved, SchemaError.SchemaError> =>
    Effect.suspend(() => {
      const cached = byRef.get(ref)
      if (cached !== undefined) return Effect.succeed(cached)
      if (ref.avro !== undefined) {
        return Effect.try({
          try: () => {
            const json = (typeof ref.avro === "string" ? JSON.parse(ref.avro) : ref.avro) as { [key: string]: unknown }
            const own = new Map<string, Named>()
            collectNamed(json, undefined, "(schema handle)", own)
            // the handle's own definitions win over same-named ones from the directory
            const registry: { [name: string]: avro.Type } = {}
            for (const [n, t] of Object.entries(directory.registry)) if (!own.has(n)) registry[n] = t
            const type = avro.Type.forSchema(json as avro.Schema, { registry })
            for (const [n, def] of own) named.set(n, def)
            const resolved = make(fullNameOf(json, undefined), json, type)
            byRef.set(ref, resolved)
            return resolved
          },
          catch: (cause) =>
            new SchemaError.SchemaError({
              reason: "UnknownSchema",
              schema: ref.fullName,
              topic,
              cause,
              message: `The Avro schema attached to ${ref.fullName} is invalid: ${String(cause)}`
            })
        })
      }
      const type = directory.type(ref.fullName)
      const def = named.get(ref.fullName)
      if (type === undefined || def === undefined) return Effect.fail(unknown(ref, topic))
      const resolved = make(ref.fullName, def.json, type)
      byRef.set(ref, resolved)
      return Effect.succeed(resolved)
    })

  /** The key schema: `<Schema>_key` with the one field for `Field` keys, the given schema for `Schema` keys. */
  const resolveKey = (key: SchemaBackend.KeySchema, topic: string): Effect.Effect<Resolved, SchemaError.SchemaError> =>
    key._tag === "Schema"
      ? resolveRef(key.schema, topic)
      : Effect.flatMap(resolveRef(key.valueSchema, topic), (value) => {
        const id = `${value.name}\u0000${key.field}`
        const cached = keyTypes.get(id)
        if (cached !== undefined) return Effect.succeed(cached)
        const field = ((value.json.fields as ReadonlyArray<{ readonly name: string; readonly type: unknown }>) ?? [])
          .find((f) => f.name === key.field)
        if (field === undefined) {
          return Effect.fail(
            new SchemaError.SchemaError({
              reason: "Key",
              schema: value.name,
              topic,
              message: `Key field "${key.field}" is not a field of schema ${value.name}`
            })
          )
        }
        const fieldType = (value.type as avro.types.RecordType).field?.(key.field)?.type
        const json = {
          type: "record",
          name: `${value.name.split(".").pop()}_key`,
          ...(value.namespace === undefined ? {} : { namespace: value.namespace }),
          fields: [{ name: key.field, type: fieldType?.schema({ exportAttrs: true }) ?? field.type }],
          doc: `Key of ${value.name}`
        }
        return Effect.try({
          try: () => {
            const type = avro.Type.forSchema(json as avro.Schema, { registry: { ...directory.registry } })
            const resolved = make(fullNameOf(json, undefined), json, type)
            keyTypes.set(id, resolved)
            return resolved
          },
          catch: (cause) =>
            new SchemaError.SchemaError({
              reason: "Key",
              schema: value.name,
              topic,
              cause,
              message: `Cannot build the key schema of ${value.name}: ${String(cause)}`
            })
        })
      })

  /** Fills the defaults of a record's missing fields (fields with defaults are optional for producers). */
  const withDefaults = (resolved: Resolved, value: unknown): unknown => {
    if (typeof value !== "object" || value === null || Array.isArray(value) || resolved.json.type !== "record") {
      return value
    }
    let out: Record<string, unknown> | undefined
    for (const f of resolved.defaults) {
      if ((value as Record<string, unknown>)[f.name] === undefined) {
        out ??= { ...(value as Record<string, unknown>) }
        out[f.name] = f.default
      }
    }
    return out ?? value
  }

  /** Validates a wire value, listing every problem with its field path (undeclared fields too). */
  const validateWire = (
    resolved: Resolved,
    value: unknown,
    topic?: string
  ): Effect.Effect<void, SchemaError.SchemaError> =>
    Effect.suspend(() => {
      const issues: Array<SchemaError.Issue> = []
      if (typeof value === "object" && value !== null && !Array.isArray(value) && resolved.json.type === "record") {
        const declared = new Set(((resolved.json.fields as ReadonlyArray<{ name: string }>) ?? []).map((f) => f.name))
        for (const k of Object.keys(value)) {
          if (!declared.has(k) && (value as Record<string, unknown>)[k] !== undefined) {
            issues.push({ path: [k], message: "undeclared field" })
          }
        }
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
      if (issues.length === 0 && !resolved.type.isValid(value, { noUndeclaredFields: true })) {
        issues.push({ path: [], message: "value does not match the schema (an undeclared field in a nested record?)" })
      }
      return issues.length === 0
        ? Effect.void
        : Effect.fail(SchemaError.validation({ schema: resolved.name, topic, issues }))
    })

  /**
   * Encodes a wire value. avsc's writer rejects values that do not match, so the detailed validation (every issue
   * with its path) only runs when it does, or when a top-level field is undeclared (the writer ignores those).
   */
  const checkedBuffer = (
    resolved: Resolved,
    value: unknown,
    topic: string
  ): Effect.Effect<Buffer, SchemaError.SchemaError> => {
    if (typeof value === "object" && value !== null && !Array.isArray(value) && resolved.json.type === "record") {
      for (const k in value) {
        if (!resolved.fieldNames.has(k) && (value as Record<string, unknown>)[k] !== undefined) {
          return Effect.flatMap(validateWire(resolved, value, topic), () => Effect.die(new Error("unreachable")))
        }
      }
    }
    try {
      return Effect.succeed(resolved.type.toBuffer(value))
    } catch (cause) {
      return Effect.flatMap(validateWire(resolved, value, topic), () =>
        Effect.fail(
          new SchemaError.SchemaError({ reason: "Encode", schema: resolved.name, topic, cause, message: String(cause) })
        ))
    }
  }

  const issuesOf = (error: ParseResult.ParseError): ReadonlyArray<SchemaError.Issue> =>
    ParseResult.ArrayFormatter.formatErrorSync(error).map((i) => ({
      path: i.path.map((p) => typeof p === "symbol" ? String(p) : p),
      message: i.message
    }))

  /** The wire value of a payload: through the handle's Effect Schema when attached. */
  const toWire = (
    ref: SchemaRef.Any,
    payload: unknown,
    topic?: string
  ): Effect.Effect<unknown, SchemaError.SchemaError> =>
    ref.schema === undefined
      ? Effect.succeed(payload)
      : Effect.mapError(
        Schema.encodeUnknown(ref.schema as AnySchema)(payload, { errors: "all", onExcessProperty: "error" }),
        (e) => SchemaError.validation({ schema: ref.fullName, topic, issues: issuesOf(e), cause: e })
      )

  /** The payload of a wire value: through the handle's Effect Schema when attached. */
  const fromWire = (
    ref: SchemaRef.Any,
    value: unknown,
    topic?: string
  ): Effect.Effect<unknown, SchemaError.SchemaError> =>
    ref.schema === undefined
      ? Effect.succeed(value)
      : Effect.mapError(
        Schema.decodeUnknown(ref.schema as AnySchema)(value, { errors: "all" }),
        (e) => SchemaError.validation({ schema: ref.fullName, topic, issues: issuesOf(e), cause: e })
      )

  const coerce = (payload: unknown, ref: SchemaRef.Any): Effect.Effect<unknown, SchemaError.SchemaError> =>
    ref.schema !== undefined
      ? SchemaBackend.json.coerce(payload, ref)
      : Effect.map(resolveRef(ref), (r) => Walk.coerce(r.json, payload, named, r.namespace))

  const keyWire = (key: SchemaBackend.KeySchema, value: unknown): unknown =>
    key._tag === "Field" ? { [key.field]: value } : value

  return {
    directory,
    named,
    resolveRef,
    resolveKey,
    validateWire,
    checkedBuffer,
    withDefaults,
    toWire,
    fromWire,
    coerce,
    keyWire,
    schemaFields: (ref: SchemaRef.Any) => Effect.map(resolveRef(ref), (r) => Walk.fields(r.json, named, r.namespace)),
    /** Validates a payload: the Effect Schema when attached, then Avro. */
    validate: (payload: unknown, ref: SchemaRef.Any, topic?: string) =>
      Effect.flatMap(
        toWire(ref, payload, topic),
        (wire) => Effect.flatMap(resolveRef(ref, topic), (r) => validateWire(r, wire, topic))
      )
  }
}

export type Common = ReturnType<typeof makeCommon>

export const decodeError = (schema: string, topic: string, message: string, cause?: unknown) =>
  new SchemaError.SchemaError({ reason: "Decode", schema, topic, cause, message })
