/**
 * The `avroSchemaRegistry` backend: Confluent wire format (magic byte 0, the schema id as a big-endian int32, the
 * Avro body).
 *
 * - A codec resolved for writing (`use: "write"`, producers; once per handle and topic) resolves the handle's schema
 *   locally and registers it as written under its subject (`<topic>-value` / `<topic>-key`, or the `subject`
 *   option), or with `register: false` looks its id up. A retriable registry failure fails the resolution (it is
 *   tried again on the next one); a refusal (a 409 for an incompatible schema, a 404 in lookup-only mode) is
 *   answered by `encode`, so that the codec still decodes.
 * - A codec resolved for reading (`use: "read"`, consumers) asks the registry nothing when it is resolved: it never
 *   registers nor looks a subject up. Its `encode` refuses (an `Encode` error saying it was resolved for reading);
 *   `validate` and `coerce` work as a writer's do.
 * - `decode` does no I/O: it reads bytes whose writer schema is known (read with the handle's schema as reader, or
 *   with the writer's when the handle has none locally). `load(bytes)` is the I/O a decode needs first: the writer
 *   schema of an id not met yet, fetched by id and kept; concurrent loads of one id make one request. An id the
 *   registry does not know (a 404) is remembered for `unknownIdTtl`: until then its messages fail to decode without
 *   a request, and the miss is logged once, when the registry answers it.
 * - Writer types and misses are kept per backend (every handle reads them), decoders per codec and writer id, ids
 *   per subject and schema.
 */
import { type SchemaBackend, SchemaError } from "@deimos/core"
import type avro from "avsc"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberId from "effect/FiberId"
import type { RegistryOptions } from "../AvroBackend.js"
import { typeOf } from "./avsc.js"
import { asBuffer } from "./buffers.js"
import { makeWriter, validatorOf, type Writer } from "./codecs.js"
import { type Common, decodeError, type Handle, keyName, readBody, type Resolved } from "./common.js"
import { isNotFound, makeClient } from "./registryClient.js"

type Codec = SchemaBackend.Codec<unknown>
type Result<A> = Either.Either<A, SchemaError.SchemaError>

/**
 * Effects run once per key: a caller finding one in flight waits for it (and runs it again itself if that caller
 * was interrupted); successes are kept, failures are not.
 */
const once = <K, A>() => {
  const done = new Map<K, A>()
  const running = new Map<K, Deferred.Deferred<A, SchemaError.SchemaError>>()
  const run = (key: K, effect: Effect.Effect<A, SchemaError.SchemaError>): Effect.Effect<A, SchemaError.SchemaError> =>
    Effect.suspend(() => {
      const known = done.get(key)
      if (known !== undefined) return Effect.succeed(known)
      const pending = running.get(key)
      if (pending !== undefined) {
        return Effect.catchAllCause(
          Deferred.await(pending),
          (cause) => Cause.isInterruptedOnly(cause) ? run(key, effect) : Effect.failCause(cause)
        )
      }
      const deferred = Deferred.unsafeMake<A, SchemaError.SchemaError>(FiberId.none)
      running.set(key, deferred)
      return effect.pipe(
        Effect.tap((a) => Effect.sync(() => done.set(key, a))),
        Effect.onExit((exit) =>
          Effect.suspend(() => {
            running.delete(key)
            return Deferred.done(deferred, exit)
          })
        )
      )
    })
  return { run, known: (key: K): A | undefined => done.get(key) }
}

interface Decoder {
  readonly type: avro.Type
  readonly resolver: avro.Resolver | undefined
  /** The payload of a value read; undefined when it is the value read. */
  readonly from: ((value: unknown) => Result<unknown>) | undefined
}

/** What a registry codec is made of. */
interface Parts {
  readonly name: string
  readonly topic: string
  readonly what: "message" | "key"
  /** The handle, when its schema resolves locally (else messages are read with the writer's schema). */
  readonly handle: Handle | undefined
  /** Why there is no handle: what `encode` and `validate` answer then. */
  readonly missing: SchemaError.SchemaError | undefined
  /** The schema id of the handle's schema, or why `encode` refuses (the registry's refusal, or a reader's codec). */
  readonly id: Result<number> | undefined
  /** Without a handle: the payload of a value read with the writer's schema. */
  readonly fromWriter: ((value: unknown) => Result<unknown>) | undefined
}

const same = (u: unknown) => u

/** Misses kept at most: past it, expired ones are dropped, then the oldest. */
const maxMisses = 1024

/** What `encode` of a codec resolved for reading answers. */
const resolvedForReading = (name: string, topic: string, what: string) =>
  new SchemaError.SchemaError({
    reason: "Encode",
    schema: name,
    topic,
    message: `Cannot encode a ${what} of ${name} for ${topic}: this codec was resolved for reading (use "read"), ` +
      `which registers nothing and knows no schema id to write; encode with a codec resolved with use "write"`
  })

export const registryResolvers = (common: Common, options: RegistryOptions): SchemaBackend.SchemaBackend.Resolvers => {
  const client = makeClient(options)
  const subjectOf = options.subject ?? ((topic: string, kind: "value" | "key") => `${topic}-${kind}`)
  const write: Writer = makeWriter()
  const ids = once<string, number>()
  const writers = once<number, avro.Type>()
  const unknownIdTtl = Duration.decode(options.unknownIdTtl ?? "30 seconds")
  const ttlMillis = Duration.toMillis(unknownIdTtl)
  /** Ids the registry answered 404 for, with the answer and until when (epoch millis) they are not asked again. */
  const misses = new Map<number, { readonly until: number; readonly error: SchemaError.SchemaError }>()

  const remember = (id: number, error: SchemaError.SchemaError) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      if (ttlMillis > 0) {
        misses.delete(id)
        misses.set(id, { until: now + ttlMillis, error })
        if (misses.size > maxMisses) {
          for (const [known, miss] of misses) if (miss.until <= now) misses.delete(known)
          for (const known of misses.keys()) {
            if (misses.size <= maxMisses) break
            misses.delete(known)
          }
        }
      }
      return Effect.logWarning(
        `Schema id ${id} is unknown to the Schema Registry at ${client.url}: messages written with it cannot be ` +
          `decoded` + (ttlMillis > 0 ? `; it is not asked for again for ${Duration.format(unknownIdTtl)}` : "")
      ).pipe(Effect.annotateLogs({ schemaId: id, registry: client.url }))
    })

  const unknownId = (id: number, name: string, topic: string, what: string, error: SchemaError.SchemaError) =>
    decodeError(
      name,
      topic,
      `Schema id ${id} of a ${what} on ${topic} is unknown to the registry: ${error.message}`,
      error
    )

  /** The id of a schema under a subject (registered, or looked up); a refusal is kept for `encode` to answer. */
  const idOf = (subject: string, resolved: Resolved): Effect.Effect<Result<number>, SchemaError.SchemaError> =>
    ids.run(
      `${subject}\u0000${resolved.schemaString}`,
      options.register === false
        ? client.lookup(subject, resolved.schemaString)
        : client.register(subject, resolved.schemaString)
    ).pipe(
      Effect.map(Either.right),
      Effect.catchIf((e) => e.retriable !== true, (e) => Effect.succeed(Either.left(e)))
    )

  const fetchWriter = (id: number, name: string, topic: string, what: string) =>
    client.schemaById(id).pipe(
      Effect.tapError((e) => isNotFound(e) ? remember(id, e) : Effect.void),
      Effect.mapError((e) => e.retriable === true ? e : unknownId(id, name, topic, what, e)),
      Effect.flatMap((schema) =>
        Effect.try({
          try: () => typeOf(JSON.parse(schema)),
          catch: (cause) => decodeError(name, topic, `Schema id ${id} is not a valid Avro schema`, cause)
        })
      )
    )

  const codecOf = (parts: Parts): Codec => {
    const { fromWriter, handle, id, missing, name, topic, what } = parts
    // decoders per writer id; the last one used, since consumers read runs of one schema
    const decoders = new Map<number, Decoder | SchemaError.SchemaError>()
    let lastId = -1
    let lastDecoder: Decoder | undefined = undefined

    const decoderOf = (writerId: number): Decoder | SchemaError.SchemaError | undefined => {
      const cached = decoders.get(writerId)
      if (cached !== undefined) return cached
      const writer = writers.known(writerId)
      if (writer === undefined) return undefined
      let decoder: Decoder | SchemaError.SchemaError
      if (handle === undefined) {
        decoder = { type: writer, resolver: undefined, from: fromWriter }
      } else {
        try {
          decoder = {
            type: handle.reader,
            resolver: handle.resolved.type.equals(writer) ? undefined : handle.reader.createResolver(writer),
            from: handle.fromRead
          }
        } catch (cause) {
          decoder = decodeError(name, topic, `Schema id ${writerId} cannot be read as ${name}: ${String(cause)}`, cause)
        }
      }
      decoders.set(writerId, decoder)
      return decoder
    }

    const unframed = (bytes: Uint8Array) =>
      Either.left(
        decodeError(
          name,
          topic,
          bytes.length < 5
            ? `A ${what} on ${topic} is too short for the Confluent wire format (${bytes.length} bytes)`
            : `A ${what} on ${topic} has magic byte ${bytes[0]}, not 0: not in the Confluent wire format`
        )
      )

    const decode = (bytes: Uint8Array): Result<unknown> => {
      if (bytes.length < 5 || bytes[0] !== 0) return unframed(bytes)
      const buffer = asBuffer(bytes)
      const writerId = buffer.readInt32BE(1)
      let decoder = writerId === lastId ? lastDecoder : undefined
      if (decoder === undefined) {
        const found = decoderOf(writerId)
        if (found === undefined) {
          return Either.left(
            decodeError(
              name,
              topic,
              `The writer schema (id ${writerId}) of a ${what} on ${topic} is not loaded: decode after codec.load(bytes)`
            )
          )
        }
        if (found instanceof SchemaError.SchemaError) return Either.left(found)
        decoder = lastDecoder = found
        lastId = writerId
      }
      const read = readBody(decoder.type, decoder.resolver, buffer, 5, name, topic, what)
      return decoder.from === undefined ? read : Either.flatMap(read, decoder.from)
    }

    const fetch = (writerId: number) => Effect.asVoid(writers.run(writerId, fetchWriter(writerId, name, topic, what)))

    const load = (bytes: Uint8Array): Effect.Effect<void, SchemaError.SchemaError> | undefined => {
      if (bytes.length < 5 || bytes[0] !== 0) return undefined
      const writerId = (bytes[1] << 24) | (bytes[2] << 16) | (bytes[3] << 8) | bytes[4]
      if (writers.known(writerId) !== undefined) return undefined
      const miss = misses.get(writerId)
      if (miss === undefined) return fetch(writerId)
      // an id the registry did not know a moment ago: not asked again before the miss expires
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (now < miss.until) return Effect.fail(unknownId(writerId, name, topic, what, miss.error))
        if (misses.get(writerId) === miss) misses.delete(writerId)
        return fetch(writerId)
      })
    }

    if (handle === undefined || id === undefined) {
      const refused = Either.left(missing!)
      return {
        schema: name,
        topic,
        coerce: same,
        validate: () => refused,
        encode: () => refused,
        decode,
        load
      }
    }
    const { toWire, writer } = handle
    const encode = (): Codec["encode"] => {
      if (Either.isLeft(id)) {
        const refusal = Either.left(id.left)
        return () => refusal
      }
      const schemaId = id.right
      return toWire === undefined
        ? (payload) => write(writer, payload, topic, schemaId)
        : (payload) => Either.flatMap(toWire(payload), (wire) => write(writer, wire, topic, schemaId))
    }
    return {
      schema: name,
      topic,
      coerce: handle.coerce,
      validate: validatorOf(handle, topic),
      encode: encode(),
      decode,
      load
    }
  }

  return {
    name: "avroSchemaRegistry",
    codec: (ref, topic, use) =>
      Effect.suspend(() => {
        const resolved = common.resolveRef(ref, topic)
        if (Either.isLeft(resolved)) {
          return Effect.succeed(codecOf({
            name: ref.fullName,
            topic,
            what: "message",
            handle: undefined,
            missing: resolved.left,
            id: undefined,
            fromWriter: common.schemaSide(ref, topic)?.fromWire
          }))
        }
        const parts = (id: Result<number>): Parts => ({
          name: ref.fullName,
          topic,
          what: "message",
          handle: common.handleOf(ref, resolved.right, topic),
          missing: undefined,
          id,
          fromWriter: undefined
        })
        // a reader asks the registry nothing now: writer schemas are fetched by id as messages need them
        if (use === "read") {
          return Effect.succeed(codecOf(parts(Either.left(resolvedForReading(ref.fullName, topic, "message")))))
        }
        return Effect.map(idOf(subjectOf(topic, "value"), resolved.right), (id) => codecOf(parts(id)))
      }),
    keyCodec: (key, topic, use) =>
      Effect.suspend(() => {
        const name = keyName(key)
        const resolved = common.resolveKey(key, topic)
        if (Either.isLeft(resolved)) {
          // a key field the local value schema lacks is a mistake; a schema not known locally is read as written
          if (resolved.left.reason === "Key") return Effect.fail(resolved.left)
          const field = key._tag === "Field" ? key.field : undefined
          return Effect.succeed(codecOf({
            name,
            topic,
            what: "key",
            handle: undefined,
            missing: resolved.left,
            id: undefined,
            fromWriter: field !== undefined
              ? (record) =>
                Either.right(
                  typeof record === "object" && record !== null ? (record as Record<string, unknown>)[field] : record
                )
              : key._tag === "Schema"
              ? common.schemaSide(key.schema, topic)?.fromWire
              : undefined
          }))
        }
        const handle = common.keyHandleOf(key, resolved.right, topic)
        const parts = (id: Result<number>): Parts => ({
          name,
          topic,
          what: "key",
          handle,
          missing: undefined,
          id,
          fromWriter: undefined
        })
        if (use === "read") return Effect.succeed(codecOf(parts(Either.left(resolvedForReading(name, topic, "key")))))
        return Effect.map(idOf(subjectOf(topic, "key"), resolved.right), (id) => codecOf(parts(id)))
      }),
    fields: (ref) => Effect.suspend(() => common.fields(ref))
  }
}
