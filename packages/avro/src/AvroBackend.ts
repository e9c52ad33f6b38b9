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
import { Eager, SchemaBackend, type SchemaError, type SchemaRef } from "@deimos/core"
import avro from "avsc"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Schedule from "effect/Schedule"
import { asBuffer } from "./internal/buffers.js"
import { type Common, decodeError, failed, makeCommon, readBody, type Resolved } from "./internal/common.js"
import { makeClient } from "./internal/registryClient.js"

/**
 * @since 0.1.0
 */
export interface LocalOptions {
  /** Directories searched (recursively) for `.avsc` files. @default [] */
  readonly schemaDirs?: ReadonlyArray<string> | undefined
}

/** Runs `f` on the wire value, synchronously when the handle's Effect Schema (if any) is. */
const withWire = <A>(
  common: Common,
  ref: SchemaRef.Any,
  payload: unknown,
  topic: string,
  f: (wire: unknown) => Effect.Effect<A, SchemaError.SchemaError>
): Effect.Effect<A, SchemaError.SchemaError> => {
  if (ref.schema === undefined) return f(payload)
  const wire = common.toWire(ref, payload, topic)
  if (!Exit.isExit(wire)) return Effect.flatMap(wire, f)
  const exit = wire as Exit.Exit<unknown, SchemaError.SchemaError>
  return Exit.isSuccess(exit) ? f(exit.value) : failed(exit)
}

/** Continues with a decoded wire value (an `Exit` on the fast path). */
const thenFromWire = (
  common: Common,
  ref: SchemaRef.Any,
  read: Exit.Exit<unknown, SchemaError.SchemaError>,
  topic: string
): Effect.Effect<unknown, SchemaError.SchemaError> =>
  Exit.isSuccess(read) ? common.fromWire(ref, read.value, topic) : read

/** The shared part of a backend, loaded when the effect runs (the schema directories are read then). */
const commonOf = (options: LocalOptions): Effect.Effect<Common, SchemaError.SchemaError> =>
  Effect.suspend(() => makeCommon(options.schemaDirs ?? []))

const localOf = (common: Common): SchemaBackend.SchemaBackend.Service => ({
  name: "avroLocal",
  encode: (payload, { schema, topic }) =>
    withWire(common, schema, payload, topic, (wire) => {
      const resolved = common.resolveRef(schema, topic)
      return Exit.isSuccess(resolved) ? common.encodeBody(resolved.value, wire, topic) : failed(resolved)
    }),
  decode: (bytes, { schema, topic }) => {
    const resolved = common.resolveRef(schema, topic)
    if (Exit.isFailure(resolved)) return failed(resolved)
    const r = resolved.value
    const read = readBody(r.type, undefined, asBuffer(bytes), 0, r.name, topic, "message")
    return thenFromWire(common, schema, read, topic)
  },
  validate: (payload, schema) => common.validate(payload, schema),
  coerce: common.coerce,
  schemaFields: common.schemaFields,
  encodeKey: (key, { key: spec, topic }) =>
    Eager.flatMap(
      common.keyToWire(spec, key, topic),
      ({ resolved, wire }) => common.encodeBody(resolved, wire, topic)
    ),
  decodeKey: (bytes, { key: spec, topic }) =>
    Eager.flatMap(
      common.resolveKey(spec, topic),
      (r) =>
        Eager.flatMap(
          readBody(r.type, undefined, asBuffer(bytes), 0, r.name, topic, "key"),
          (v) => common.keyFromWire(spec, v, topic)
        )
    )
})

/**
 * The `avroLocal` backend. Fails with an `UnknownSchema` error naming the file when a schema directory holds a
 * file that cannot be loaded (bad JSON, a referenced type no file defines, a type defined twice).
 *
 * @since 0.1.0
 */
export const makeLocal = (options: LocalOptions = {}): Effect.Effect<
  SchemaBackend.SchemaBackend.Service,
  SchemaError.SchemaError
> => Effect.map(commonOf(options), localOf)

/**
 * @since 0.1.0
 * @category layers
 */
export const layerLocal = (
  options: LocalOptions = {}
): Layer.Layer<SchemaBackend.SchemaBackend, SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, makeLocal(options))

const validationOf = (common: Common): SchemaBackend.SchemaBackend.Service => {
  const mock = SchemaBackend.mock
  /** What a consumer of the real backends gets: the wire value validated, written and read back by avsc. */
  const asRead = (ref: SchemaRef.Any, payload: unknown, topic: string) =>
    Eager.flatMap(
      common.toWire(ref, payload, topic),
      (wire) =>
        Eager.flatMap(common.resolveRef(ref, topic), (r) =>
          Eager.flatMap(
            common.validateWire(r, wire, topic),
            () => Eager.flatMap(common.roundTrip(r, wire, topic), (read) => common.fromWire(ref, read, topic))
          ))
    )
  return {
    name: "avroValidation",
    encode: (payload, o) => Eager.flatMap(common.validate(payload, o.schema, o.topic), () => mock.encode(payload, o)),
    decode: (bytes, o) => Eager.flatMap(mock.decode(bytes, o), (payload) => asRead(o.schema, payload, o.topic)),
    validate: (payload, schema) => common.validate(payload, schema),
    coerce: common.coerce,
    schemaFields: common.schemaFields,
    encodeKey: (key, o) =>
      Eager.flatMap(
        common.keyToWire(o.key, key, o.topic),
        ({ resolved, wire }) =>
          Eager.flatMap(
            common.validateWire(resolved, wire, o.topic),
            () => Eager.flatMap(common.keyFromWire(o.key, wire, o.topic), (coerced) => mock.encodeKey(coerced, o))
          )
      ),
    decodeKey: (bytes, o) =>
      Eager.flatMap(
        mock.decodeKey(bytes, o),
        (key) =>
          Eager.flatMap(
            common.keyToWire(o.key, key, o.topic),
            ({ resolved, wire }) =>
              Eager.flatMap(
                common.validateWire(resolved, wire, o.topic),
                () =>
                  Eager.flatMap(
                    common.roundTrip(resolved, wire, o.topic),
                    (read) => common.keyFromWire(o.key, read, o.topic)
                  )
              )
          )
      )
  }
}

/**
 * The validating mock for Avro apps: validates and coerces like `avroLocal`, encodes with the mock's JSON, and
 * decodes to what `avroLocal` would hand a consumer (defaults filled, the values avsc reads back).
 *
 * @since 0.1.0
 */
export const makeValidation = (options: LocalOptions = {}): Effect.Effect<
  SchemaBackend.SchemaBackend.Service,
  SchemaError.SchemaError
> => Effect.map(commonOf(options), validationOf)

/**
 * @since 0.1.0
 * @category layers
 */
export const layerValidation = (
  options: LocalOptions = {}
): Layer.Layer<SchemaBackend.SchemaBackend, SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, makeValidation(options))

/**
 * @since 0.1.0
 */
export interface RegistryOptions extends LocalOptions {
  /** The Schema Registry's base URL, e.g. `http://localhost:8081`. */
  readonly url: string
  /** HTTP basic auth. @default none */
  readonly auth?: { readonly username: string; readonly password: Redacted.Redacted } | undefined
  /** Register schemas when encoding; with `false`, encoding only looks the schema up. Decoding never registers. @default true */
  readonly register?: boolean | undefined
  /** The subject of a topic's values or keys. @default `<topic>-value` / `<topic>-key` */
  readonly subject?: ((topic: string, kind: "value" | "key") => string) | undefined
  /** Retries of retriable registry failures (unreachable, 5xx). @default 5 */
  readonly retries?: number | undefined
  /** The backoff between those retries. @default Schedule.exponential("100 millis") */
  readonly retrySchedule?: Schedule.Schedule<unknown, SchemaError.SchemaError> | undefined
}

interface Decoder {
  readonly type: avro.Type
  readonly resolver: avro.Resolver | undefined
}

/**
 * @since 0.1.0
 */
export const makeSchemaRegistry = (options: RegistryOptions): Effect.Effect<
  SchemaBackend.SchemaBackend.Service,
  SchemaError.SchemaError
> => Effect.map(commonOf(options), (common) => registryOf(common, options))

const registryOf = (common: Common, options: RegistryOptions): SchemaBackend.SchemaBackend.Service => {
  const client = makeClient(options)
  const subjectOf = options.subject ?? ((topic, kind) => `${topic}-${kind}`)
  // schema ids per resolved schema and topic, one map for values and one for keys
  const valueIds = new WeakMap<Resolved, Map<string, number>>()
  const keyIds = new WeakMap<Resolved, Map<string, number>>()
  // writer types by id; decoders per reader (or per writer when the handle has no local schema) and id
  const writers = new Map<number, avro.Type>()
  const readers = new WeakMap<SchemaRef.Any, Resolved | null>()
  const byReader = new WeakMap<Resolved, Map<number, Decoder>>()
  const byWriter = new Map<number, Decoder>()
  // encoding scratch: avsc writes after the 5-byte header, then the frame is copied out once
  let scratch = Buffer.allocUnsafe(4096)

  const idOf = (cache: WeakMap<Resolved, Map<string, number>>, resolved: Resolved, topic: string) =>
    cache.get(resolved)?.get(topic)

  const fetchId = (
    cache: WeakMap<Resolved, Map<string, number>>,
    resolved: Resolved,
    topic: string,
    kind: "value" | "key"
  ): Effect.Effect<number, SchemaError.SchemaError> => {
    const subject = subjectOf(topic, kind)
    const call = options.register === false
      ? client.lookup(subject, resolved.schemaString)
      : client.register(subject, resolved.schemaString)
    return Effect.tap(call, (id) =>
      Effect.sync(() => {
        let byTopic = cache.get(resolved)
        if (byTopic === undefined) cache.set(resolved, byTopic = new Map())
        byTopic.set(topic, id)
      }))
  }

  /** The Confluent frame: magic byte 0, the schema id (big-endian int32), the Avro body. */
  const frame = (resolved: Resolved, wire: unknown, id: number, topic: string) => {
    let end = common.encodeInto(resolved, wire, scratch, 5, topic)
    if (typeof end === "number" && end < 0) {
      scratch = Buffer.allocUnsafe(Math.max(scratch.length * 2, scratch.length - end + 5))
      end = common.encodeInto(resolved, wire, scratch, 5, topic)
    }
    if (typeof end !== "number") return Exit.fail(end)
    const out = Buffer.allocUnsafe(end)
    scratch.copy(out, 5, 5, end)
    out[0] = 0
    out.writeInt32BE(id, 1)
    return Exit.succeed<Uint8Array>(out)
  }

  const encodeFramed = (
    resolved: Resolved,
    wire: unknown,
    topic: string,
    kind: "value" | "key"
  ): Effect.Effect<Uint8Array, SchemaError.SchemaError> => {
    const cache = kind === "value" ? valueIds : keyIds
    const id = idOf(cache, resolved, topic)
    if (id !== undefined) return frame(resolved, wire, id, topic)
    // validate before registering: an invalid payload never registers anything
    const valid = common.validateWire(resolved, wire, topic)
    if (Exit.isFailure(valid)) return failed(valid)
    return Effect.flatMap(fetchId(cache, resolved, topic, kind), (id) => frame(resolved, wire, id, topic))
  }

  const writerOf = (id: number, name: string, topic: string) =>
    client.schemaById(id).pipe(
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

  /** The reader schema of a handle, when it can be resolved locally (else messages are read with the writer's). */
  const readerOf = (ref: SchemaRef.Any): Resolved | undefined => {
    const known = readers.get(ref)
    if (known !== undefined) return known ?? undefined
    const resolved = common.resolveRef(ref)
    const reader = Exit.isSuccess(resolved) ? resolved.value : null
    readers.set(ref, reader)
    return reader ?? undefined
  }

  /** The decoder of writer `id` for `reader`; undefined until the writer schema is known. */
  const decoderOf = (
    reader: Resolved | undefined,
    id: number,
    name: string,
    topic: string
  ): Decoder | SchemaError.SchemaError | undefined => {
    let cache = byWriter
    if (reader !== undefined) {
      const known = byReader.get(reader)
      if (known === undefined) byReader.set(reader, cache = new Map())
      else cache = known
    }
    const cached = cache.get(id)
    if (cached !== undefined) return cached
    const writer = writers.get(id)
    if (writer === undefined) return undefined
    try {
      const decoder: Decoder = reader === undefined || reader.type.equals(writer)
        ? { type: reader?.type ?? writer, resolver: undefined }
        : { type: reader.type, resolver: reader.type.createResolver(writer) }
      cache.set(id, decoder)
      return decoder
    } catch (cause) {
      return decodeError(name, topic, `Schema id ${id} cannot be read as ${name}: ${String(cause)}`, cause)
    }
  }

  // the last (handle, writer id) decoded and its decoder: a consumer reads runs of one schema, and this skips the
  // WeakMap lookups of `readerOf` / `decoderOf` on the hot path
  let lastRef: SchemaRef.Any | undefined = undefined
  let lastId = -1
  let lastDecoder: Decoder | undefined = undefined

  const decodeValue = (
    bytes: Uint8Array,
    ref: SchemaRef.Any,
    topic: string
  ): Effect.Effect<unknown, SchemaError.SchemaError> => {
    if (bytes.length >= 5 && bytes[0] === 0) {
      const buffer = asBuffer(bytes)
      const id = buffer.readInt32BE(1)
      if (ref !== lastRef || id !== lastId) {
        const decoder = decoderOf(readerOf(ref), id, ref.fullName, topic)
        if (decoder === undefined || !("type" in decoder)) {
          return decodeFramed(bytes, readerOf(ref), ref.fullName, topic, "message")
        }
        lastRef = ref
        lastId = id
        lastDecoder = decoder
      }
      return readBody(lastDecoder!.type, lastDecoder!.resolver, buffer, 5, ref.fullName, topic, "message")
    }
    return decodeFramed(bytes, readerOf(ref), ref.fullName, topic, "message")
  }

  const decodeFramed = (
    bytes: Uint8Array,
    reader: Resolved | undefined,
    name: string,
    topic: string,
    what: "message" | "key"
  ): Effect.Effect<unknown, SchemaError.SchemaError> => {
    if (bytes.length < 5 || bytes[0] !== 0) {
      return Exit.fail(
        decodeError(
          name,
          topic,
          bytes.length < 5
            ? `A ${what} on ${topic} is too short for the Confluent wire format (${bytes.length} bytes)`
            : `A ${what} on ${topic} has magic byte ${bytes[0]}, not 0: not in the Confluent wire format`
        )
      )
    }
    const buffer = asBuffer(bytes)
    const id = buffer.readInt32BE(1)
    const decoder = decoderOf(reader, id, name, topic)
    if (decoder !== undefined) return read(decoder, buffer, name, topic, what)
    return Effect.flatMap(
      writerOf(id, name, topic),
      () => read(decoderOf(reader, id, name, topic)!, buffer, name, topic, what)
    )
  }

  const read = (
    decoder: Decoder | SchemaError.SchemaError,
    buffer: Buffer,
    name: string,
    topic: string,
    what: "message" | "key"
  ) =>
    "type" in decoder
      ? readBody(decoder.type, decoder.resolver, buffer, 5, name, topic, what)
      : Exit.fail(decoder)

  // the last (handle, topic) encoded, its schema and id: a producer writes runs of one schema to one topic
  let lastEncodeRef: SchemaRef.Any | undefined = undefined
  let lastTopic = ""
  let lastResolved: Resolved | undefined = undefined
  let lastEncodeId = -1

  const encodeValue = (ref: SchemaRef.Any, wire: unknown, topic: string) => {
    if (ref === lastEncodeRef && topic === lastTopic) return frame(lastResolved!, wire, lastEncodeId, topic)
    const resolved = common.resolveRef(ref, topic)
    if (Exit.isFailure(resolved)) return failed<Uint8Array>(resolved)
    const id = idOf(valueIds, resolved.value, topic)
    if (id !== undefined) {
      lastEncodeRef = ref
      lastTopic = topic
      lastResolved = resolved.value
      lastEncodeId = id
    }
    return encodeFramed(resolved.value, wire, topic, "value")
  }

  return {
    name: "avroSchemaRegistry",
    encode: (payload, { schema, topic }) => {
      // the hot path allocates no continuation: a handle without an Effect Schema encodes the payload as it is
      if (schema.schema === undefined) return encodeValue(schema, payload, topic)
      const wire = common.toWire(schema, payload, topic)
      if (!Exit.isExit(wire)) return Effect.flatMap(wire, (w) => encodeValue(schema, w, topic))
      const exit = wire as Exit.Exit<unknown, SchemaError.SchemaError>
      return Exit.isSuccess(exit) ? encodeValue(schema, exit.value, topic) : failed(exit)
    },
    decode: (bytes, { schema, topic }) => {
      const read = decodeValue(bytes, schema, topic)
      if (schema.schema === undefined) return read
      return Exit.isExit(read)
        ? thenFromWire(common, schema, read as Exit.Exit<unknown, SchemaError.SchemaError>, topic)
        : Effect.flatMap(read, (value) => common.fromWire(schema, value, topic))
    },
    validate: (payload, schema) => common.validate(payload, schema),
    coerce: common.coerce,
    schemaFields: common.schemaFields,
    encodeKey: (key, { key: spec, topic }) =>
      Effect.flatMap(
        common.keyToWire(spec, key, topic),
        ({ resolved, wire }) => encodeFramed(resolved, wire, topic, "key")
      ),
    decodeKey: (bytes, { key: spec, topic }) => {
      const resolved = common.resolveKey(spec, topic)
      const name = spec._tag === "Field" ? `${spec.valueSchema.fullName}_key` : spec.schema.fullName
      return Effect.flatMap(
        decodeFramed(bytes, Exit.isSuccess(resolved) ? resolved.value : undefined, name, topic, "key"),
        (v) => common.keyFromWire(spec, v, topic)
      )
    }
  }
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerSchemaRegistry = (
  options: RegistryOptions
): Layer.Layer<SchemaBackend.SchemaBackend, SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, makeSchemaRegistry(options))

const schemaDirsConfig = Config.withDefault(
  Config.map(Config.string("AVRO_SCHEMA_DIRS"), (s) => s.split(",").map((d) => d.trim()).filter((d) => d !== "")),
  []
)

/**
 * `AVRO_SCHEMA_DIRS` (comma-separated directories).
 *
 * @since 0.1.0
 */
export const localConfig: Config.Config<LocalOptions> = Config.all({ schemaDirs: schemaDirsConfig })

/**
 * `AVRO_SCHEMA_DIRS` (comma-separated), `SCHEMA_REGISTRY_URL`, `SCHEMA_REGISTRY_USERNAME`,
 * `SCHEMA_REGISTRY_PASSWORD` (redacted), `SCHEMA_REGISTRY_REGISTER` (default true).
 *
 * @since 0.1.0
 */
export const registryConfig: Config.Config<RegistryOptions> = Config.all({
  schemaDirs: schemaDirsConfig,
  url: Config.string("SCHEMA_REGISTRY_URL"),
  auth: Config.option(Config.all({
    username: Config.string("SCHEMA_REGISTRY_USERNAME"),
    password: Config.redacted("SCHEMA_REGISTRY_PASSWORD")
  })),
  register: Config.withDefault(Config.boolean("SCHEMA_REGISTRY_REGISTER"), true)
}).pipe(Config.map(({ auth, ...rest }) => ({ ...rest, auth: Option.getOrUndefined(auth) })))

/**
 * `layerLocal` with its options read from `Config` (by default {@link localConfig}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLocalConfig = (
  options: Config.Config.Wrap<LocalOptions> = localConfig
): Layer.Layer<SchemaBackend.SchemaBackend, ConfigError.ConfigError | SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, Effect.flatMap(Config.unwrap(options), makeLocal))

/**
 * `layerValidation` with its options read from `Config` (by default {@link localConfig}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerValidationConfig = (
  options: Config.Config.Wrap<LocalOptions> = localConfig
): Layer.Layer<SchemaBackend.SchemaBackend, ConfigError.ConfigError | SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, Effect.flatMap(Config.unwrap(options), makeValidation))

/**
 * `layerSchemaRegistry` with its options read from `Config` (by default {@link registryConfig}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSchemaRegistryConfig = (
  options: Config.Config.Wrap<RegistryOptions> = registryConfig
): Layer.Layer<SchemaBackend.SchemaBackend, ConfigError.ConfigError | SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, Effect.flatMap(Config.unwrap(options), makeSchemaRegistry))
