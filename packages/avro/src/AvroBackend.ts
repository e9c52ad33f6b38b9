/**
 * Avro schema backends (REFERENCE §5), each implementing the core `SchemaBackend` port:
 * - `layerLocal`: schemas from directories (found by namespace + name, named types resolved across files) or
 *   attached to the schema handle; plain Avro binary.
 * - `layerSchemaRegistry`: Confluent wire format (magic 0, 4-byte schema id, Avro body). Encoding registers the
 *   value and key schemas under `<topic>-value` / `<topic>-key` (the topic already carries the prefix); decoding
 *   only looks schemas up by id and never registers (Deimos #159). Ids, types and resolvers are cached; a newer
 *   compatible reader schema reads older messages.
 * - `layerValidation`: validates exactly like the others but does not encode Avro (bytes are the mock's JSON):
 *   the validating mock for unit tests of apps that use Avro.
 *
 * @since 0.1.0
 */
import type { SchemaError } from "@deimos/core"
import { SchemaBackend, type SchemaRef } from "@deimos/core"
import avro from "avsc"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import { type Common, decodeError, makeCommon, type Resolved } from "./internal/common.js"
import { makeClient } from "./internal/registryClient.js"

/**
 * @since 0.1.0
 */
export interface LocalOptions {
  /** Directories searched (recursively) for `.avsc` files. @default [] */
  readonly schemaDirs?: ReadonlyArray<string> | undefined
}

const decodeWith = (
  common: Common,
  resolved: Resolved,
  ref: SchemaRef.Any,
  bytes: Uint8Array,
  topic: string,
  resolver?: avro.Resolver
) =>
  Effect.flatMap(
    Effect.try({
      try: () =>
        resolver === undefined
          ? resolved.type.fromBuffer(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
          : resolved.type.fromBuffer(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), resolver),
      catch: (cause) =>
        decodeError(
          resolved.name,
          topic,
          `Cannot decode ${bytes.length} bytes of ${topic} as ${resolved.name}: ${String(cause)}`,
          cause
        )
    }),
    (value) => common.fromWire(ref, value, topic)
  )

const encodeWith = (common: Common, resolved: Resolved, payload: unknown, topic: string) =>
  Effect.map(common.checkedBuffer(resolved, common.withDefaults(resolved, payload), topic), (b) => new Uint8Array(b))

/**
 * @since 0.1.0
 */
export const makeLocal = (options: LocalOptions = {}): SchemaBackend.SchemaBackend.Service => {
  const common = makeCommon(options.schemaDirs ?? [])
  return {
    name: "avroLocal",
    encode: (payload, { schema, topic }) =>
      Effect.flatMap(
        common.toWire(schema, payload, topic),
        (wire) => Effect.flatMap(common.resolveRef(schema, topic), (r) => encodeWith(common, r, wire, topic))
      ),
    decode: (bytes, { schema, topic }) =>
      Effect.flatMap(common.resolveRef(schema, topic), (r) => decodeWith(common, r, schema, bytes, topic)),
    validate: (payload, schema) => common.validate(payload, schema),
    coerce: common.coerce,
    schemaFields: common.schemaFields,
    encodeKey: (key, { key: spec, topic }) =>
      Effect.flatMap(common.resolveKey(spec, topic), (r) => encodeWith(common, r, common.keyWire(spec, key), topic)),
    decodeKey: (bytes, { key: spec, topic }) =>
      Effect.flatMap(common.resolveKey(spec, topic), (r) =>
        Effect.try({
          try: () => r.type.fromBuffer(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as unknown,
          catch: (cause) => decodeError(r.name, topic, `Cannot decode the key of ${topic}: ${String(cause)}`, cause)
        }).pipe(Effect.map((v) => spec._tag === "Field" ? (v as Record<string, unknown>)[spec.field] : v)))
  }
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerLocal = (options: LocalOptions = {}): Layer.Layer<SchemaBackend.SchemaBackend> =>
  Layer.sync(SchemaBackend.SchemaBackend, () => makeLocal(options))

/**
 * The validating mock for Avro apps: validates and coerces like `avroLocal`, encodes with the mock's JSON.
 *
 * @since 0.1.0
 */
export const makeValidation = (options: LocalOptions = {}): SchemaBackend.SchemaBackend.Service => {
  const common = makeCommon(options.schemaDirs ?? [])
  const mock = SchemaBackend.mock
  return {
    name: "avroValidation",
    encode: (payload, o) => Effect.flatMap(common.validate(payload, o.schema, o.topic), () => mock.encode(payload, o)),
    decode: (bytes, o) =>
      Effect.flatMap(
        mock.decode(bytes, o),
        (payload) => Effect.as(common.validate(payload, o.schema, o.topic), payload)
      ),
    validate: (payload, schema) => common.validate(payload, schema),
    coerce: common.coerce,
    schemaFields: common.schemaFields,
    encodeKey: (key, o) =>
      Effect.flatMap(
        common.resolveKey(o.key, o.topic),
        (r) => Effect.flatMap(common.validateWire(r, common.keyWire(o.key, key), o.topic), () => mock.encodeKey(key, o))
      ),
    decodeKey: (bytes, o) => mock.decodeKey(bytes, o)
  }
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerValidation = (options: LocalOptions = {}): Layer.Layer<SchemaBackend.SchemaBackend> =>
  Layer.sync(SchemaBackend.SchemaBackend, () => makeValidation(options))

/**
 * @since 0.1.0
 */
export interface RegistryOptions extends LocalOptions {
  readonly url: string
  readonly auth?: { readonly username: string; readonly password: Redacted.Redacted } | undefined
  /** Register schemas when encoding; with `false`, encoding only looks the schema up. @default true */
  readonly register?: boolean | undefined
  /** The subject of a topic's values or keys. @default `<topic>-value` / `<topic>-key` */
  readonly subject?: ((topic: string, kind: "value" | "key") => string) | undefined
  /** Retries of unreachable-registry failures (exponential backoff from 100 ms). @default 5 */
  readonly retries?: number | undefined
}

/**
 * @since 0.1.0
 */
export const makeSchemaRegistry = (options: RegistryOptions): SchemaBackend.SchemaBackend.Service => {
  const common = makeCommon(options.schemaDirs ?? [])
  const client = makeClient(options)
  const subjectOf = options.subject ?? ((topic, kind) => `${topic}-${kind}`)
  // caches keyed by the resolved schema object (one per schema handle), then subject or writer id
  const ids = new WeakMap<Resolved, Map<string, number>>()
  const writers = new Map<number, avro.Type>()
  const resolvers = new WeakMap<Resolved, Map<number, avro.Resolver>>()

  const idFor = (resolved: Resolved, subject: string) => {
    let bySubject = ids.get(resolved)
    if (bySubject === undefined) ids.set(resolved, bySubject = new Map())
    const cached = bySubject.get(subject)
    if (cached !== undefined) return Effect.succeed(cached)
    const call = options.register === false
      ? client.lookup(subject, resolved.schemaString)
      : client.register(subject, resolved.schemaString)
    const cache = bySubject
    return Effect.tap(call, (id) => Effect.sync(() => cache.set(subject, id)))
  }

  const framed = (id: number, body: Buffer): Uint8Array => {
    const out = Buffer.allocUnsafe(5 + body.length)
    out[0] = 0
    out.writeInt32BE(id, 1)
    body.copy(out, 5)
    return out
  }

  const writerOf = (id: number, name: string, topic: string) => {
    const cached = writers.get(id)
    if (cached !== undefined) return Effect.succeed(cached)
    return client.schemaById(id).pipe(
      Effect.mapError((e) =>
        e.retriable === true
          ? e
          : decodeError(
            name,
            topic,
            `Schema id ${id} of a message on ${topic} is unknown to the registry: ${e.message}`,
            e
          )
      ),
      Effect.flatMap((schema) =>
        Effect.try({
          try: () => avro.Type.forSchema(JSON.parse(schema) as avro.Schema),
          catch: (cause) => decodeError(name, topic, `Schema id ${id} is not a valid Avro schema`, cause)
        })
      ),
      Effect.tap((type) => Effect.sync(() => writers.set(id, type)))
    )
  }

  const encodeFramed = (resolved: Resolved, wire: unknown, subject: string, topic: string) =>
    Effect.flatMap(
      common.validateWire(resolved, wire, topic),
      () => Effect.map(idFor(resolved, subject), (id) => framed(id, resolved.type.toBuffer(wire)))
    )

  const decodeFramed = (
    bytes: Uint8Array,
    reader: Resolved | undefined,
    name: string,
    topic: string
  ): Effect.Effect<unknown, SchemaError.SchemaError> => {
    if (bytes.length < 5 || bytes[0] !== 0) {
      return Effect.fail(
        decodeError(
          name,
          topic,
          bytes.length < 5
            ? `Message on ${topic} is too short for the Confluent wire format (${bytes.length} bytes)`
            : `Message on ${topic} has magic byte ${bytes[0]}, not 0: not in the Confluent wire format`
        )
      )
    }
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const id = buf.readInt32BE(1)
    return Effect.flatMap(writerOf(id, name, topic), (writer) =>
      Effect.try({
        try: () => {
          const body = buf.subarray(5)
          if (reader === undefined) return writer.fromBuffer(body) as unknown
          let byId = resolvers.get(reader)
          if (byId === undefined) resolvers.set(reader, byId = new Map())
          let resolver = byId.get(id)
          if (resolver === undefined) {
            resolver = reader.type.createResolver(writer)
            byId.set(id, resolver)
          }
          return reader.type.fromBuffer(body, resolver) as unknown
        },
        catch: (cause) =>
          decodeError(name, topic, `Cannot decode a message on ${topic} (schema id ${id}): ${String(cause)}`, cause)
      }))
  }

  /** The reader schema: the handle's, when it can be resolved; else the writer's. */
  const readerOf = (ref: SchemaRef.Any) =>
    Effect.orElseSucceed(Effect.map(common.resolveRef(ref), (r): Resolved | undefined => r), () => undefined)

  return {
    name: "avroSchemaRegistry",
    encode: (payload, { schema, topic }) =>
      Effect.flatMap(
        common.toWire(schema, payload, topic),
        (wire) =>
          Effect.flatMap(
            common.resolveRef(schema, topic),
            (r) => encodeFramed(r, wire, subjectOf(topic, "value"), topic)
          )
      ),
    decode: (bytes, { schema, topic }) =>
      Effect.flatMap(
        readerOf(schema),
        (reader) =>
          Effect.flatMap(decodeFramed(bytes, reader, schema.fullName, topic), (value) =>
            common.fromWire(schema, value, topic))
      ),
    validate: (payload, schema) => common.validate(payload, schema),
    coerce: common.coerce,
    schemaFields: common.schemaFields,
    encodeKey: (key, { key: spec, topic }) =>
      Effect.flatMap(
        common.resolveKey(spec, topic),
        (r) => encodeFramed(r, common.keyWire(spec, key), subjectOf(topic, "key"), topic)
      ),
    decodeKey: (bytes, { key: spec, topic }) =>
      Effect.flatMap(
        Effect.orElseSucceed(
          Effect.map(common.resolveKey(spec, topic), (r): Resolved | undefined => r),
          () => undefined
        ),
        (reader) =>
          Effect.map(
            decodeFramed(
              bytes,
              reader,
              spec._tag === "Field" ? `${spec.valueSchema.fullName}_key` : spec.schema.fullName,
              topic
            ),
            (v) => spec._tag === "Field" ? (v as Record<string, unknown>)[spec.field] : v
          )
      )
  }
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerSchemaRegistry = (options: RegistryOptions): Layer.Layer<SchemaBackend.SchemaBackend> =>
  Layer.sync(SchemaBackend.SchemaBackend, () => makeSchemaRegistry(options))

/**
 * `AVRO_SCHEMA_DIRS` (comma-separated), `SCHEMA_REGISTRY_URL`, `SCHEMA_REGISTRY_USERNAME`,
 * `SCHEMA_REGISTRY_PASSWORD` (redacted), `SCHEMA_REGISTRY_REGISTER` (default true).
 *
 * @since 0.1.0
 */
export const registryConfig: Config.Config<RegistryOptions> = Config.all({
  schemaDirs: Config.withDefault(
    Config.map(Config.string("AVRO_SCHEMA_DIRS"), (s) => s.split(",").map((d) => d.trim()).filter((d) => d !== "")),
    []
  ),
  url: Config.string("SCHEMA_REGISTRY_URL"),
  auth: Config.option(Config.all({
    username: Config.string("SCHEMA_REGISTRY_USERNAME"),
    password: Config.redacted("SCHEMA_REGISTRY_PASSWORD")
  })),
  register: Config.withDefault(Config.boolean("SCHEMA_REGISTRY_REGISTER"), true)
}).pipe(Config.map(({ auth, ...rest }) => ({ ...rest, auth: Option.getOrUndefined(auth) })))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerSchemaRegistryConfig = (
  options: Config.Config<RegistryOptions> = registryConfig
): Layer.Layer<SchemaBackend.SchemaBackend, ConfigError.ConfigError> =>
  Layer.effect(SchemaBackend.SchemaBackend, Effect.map(options, makeSchemaRegistry))

/**
 * `AVRO_SCHEMA_DIRS` (comma-separated).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLocalConfig: Layer.Layer<SchemaBackend.SchemaBackend, ConfigError.ConfigError> = Layer.effect(
  SchemaBackend.SchemaBackend,
  Effect.map(
    Config.withDefault(
      Config.map(Config.string("AVRO_SCHEMA_DIRS"), (s) => s.split(",").map((d) => d.trim()).filter((d) => d !== "")),
      []
    ),
    (schemaDirs) => makeLocal({ schemaDirs })
  )
)
