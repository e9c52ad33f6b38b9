/**
 * The codecs of `avroLocal` (plain Avro binary) and `avroValidation` (the mock's JSON, checked and read back as
 * the Avro backends would), and the framed writer the registry backend shares: plain code over a resolved handle.
 */
import { MockBackend, type SchemaBackend, type SchemaError } from "@deimos/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { asBuffer } from "./buffers.js"
import {
  type Common,
  encodeBody,
  encodeInto,
  type Handle,
  keyName,
  readBody,
  type Resolved,
  validateWire
} from "./common.js"

type Codec = SchemaBackend.Codec<unknown>
type Result<A> = Either.Either<A, SchemaError.SchemaError>

const noLoad = () => undefined
const ok = Either.right(undefined)

/**
 * Writes wire values after a `header` of 0 or 5 bytes (the Confluent frame: magic byte 0, the schema id as a
 * big-endian int32). avsc writes into one scratch buffer (grown when a value does not fit), then the bytes are
 * copied out once.
 */
export const makeWriter = () => {
  let scratch = Buffer.allocUnsafe(4096)
  return (resolved: Resolved, wire: unknown, topic: string, id: number | undefined): Result<Uint8Array> => {
    const header = id === undefined ? 0 : 5
    let end = encodeInto(resolved, wire, scratch, header, topic)
    if (typeof end === "number" && end < 0) {
      scratch = Buffer.allocUnsafe(Math.max(scratch.length * 2, scratch.length - end + header))
      end = encodeInto(resolved, wire, scratch, header, topic)
    }
    if (typeof end !== "number") return Either.left(end)
    const out = Buffer.allocUnsafe(end)
    scratch.copy(out, header, header, end)
    if (id !== undefined) {
      out[0] = 0
      out.writeInt32BE(id, 1)
    }
    return Either.right(out)
  }
}

export type Writer = ReturnType<typeof makeWriter>

/** `validate` of a handle: the Effect Schema when attached, then Avro (every issue with its path). */
export const validatorOf = (handle: Handle, topic: string): Codec["validate"] => {
  const { toWire, writer } = handle
  return toWire === undefined
    ? (payload) => validateWire(writer, payload, topic)
    : (payload) => Either.flatMap(toWire(payload), (wire) => validateWire(writer, wire, topic))
}

/** The `avroLocal` codec of a handle: plain Avro binary. */
const localCodec = (handle: Handle, name: string, topic: string, what: string, write: Writer): Codec => {
  const { fromRead, reader, toWire, writer } = handle
  const read = (bytes: Uint8Array) => readBody(reader, undefined, asBuffer(bytes), 0, name, topic, what)
  return {
    schema: name,
    topic,
    coerce: handle.coerce,
    validate: validatorOf(handle, topic),
    encode: toWire === undefined
      ? (payload) => write(writer, payload, topic, undefined)
      : (payload) => Either.flatMap(toWire(payload), (wire) => write(writer, wire, topic, undefined)),
    decode: fromRead === undefined ? read : (bytes) => Either.flatMap(read(bytes), fromRead),
    load: noLoad
  }
}

/** The resolvers of `avroLocal`: readers and writers are alike (plain Avro binary names no schema id). */
export const localResolvers = (common: Common): SchemaBackend.SchemaBackend.Resolvers => {
  const write = makeWriter()
  return {
    name: "avroLocal",
    codec: (ref, topic) =>
      Effect.suspend(() =>
        Either.map(
          common.resolveRef(ref, topic),
          (resolved) => localCodec(common.handleOf(ref, resolved, topic), ref.fullName, topic, "message", write)
        )
      ),
    keyCodec: (key, topic) =>
      Effect.suspend(() =>
        Either.map(
          common.resolveKey(key, topic),
          (resolved) => localCodec(common.keyHandleOf(key, resolved, topic), keyName(key), topic, "key", write)
        )
      ),
    fields: (ref) => Effect.suspend(() => common.fields(ref))
  }
}

/**
 * The `avroValidation` codec of a handle: checks like `avroLocal`, encodes with the mock's JSON (`mock`, the mock
 * backend's codec), and decodes to what `avroLocal` would hand a consumer: the value is validated, written and
 * read back by avsc (defaults filled, the values avsc reads) and goes through the handle's reader.
 */
const validationCodec = (handle: Handle, name: string, topic: string, what: string, mock: Codec): Codec => {
  const { fromRead, reader, toWire, writer } = handle
  const checked = (payload: unknown): Result<unknown> => {
    const wire = toWire === undefined ? Either.right(payload) : toWire(payload)
    return Either.flatMap(wire, (w) => Either.map(validateWire(writer, w, topic), () => w))
  }
  /** What a consumer of the real backends gets. */
  const asRead = (payload: unknown): Result<unknown> =>
    Either.flatMap(checked(payload), (wire) =>
      Either.flatMap(encodeBody(writer, wire, topic), (body) => {
        const read = readBody(reader, undefined, body, 0, name, topic, what)
        return fromRead === undefined ? read : Either.flatMap(read, fromRead)
      }))
  return {
    schema: name,
    topic,
    coerce: handle.coerce,
    validate: (payload) => Either.flatMap(checked(payload), () => ok),
    encode: (payload) => Either.flatMap(checked(payload), () => mock.encode(payload)),
    decode: (bytes) => Either.flatMap(mock.decode(bytes), asRead),
    load: noLoad
  }
}

/** The resolvers of `avroValidation`: readers and writers are alike, as in `avroLocal`. */
export const validationResolvers = (common: Common): SchemaBackend.SchemaBackend.Resolvers => {
  const mock = MockBackend.mock
  return {
    name: "avroValidation",
    codec: (ref, topic, use) =>
      Effect.flatMap(Effect.suspend(() => common.resolveRef(ref, topic)), (resolved) =>
        Effect.map(
          mock.codec(ref, topic, use),
          (json) => validationCodec(common.handleOf(ref, resolved, topic), ref.fullName, topic, "message", json)
        )),
    keyCodec: (key, topic, use) =>
      Effect.flatMap(Effect.suspend(() => common.resolveKey(key, topic)), (resolved) =>
        Effect.map(
          mock.keyCodec(key, topic, use),
          (json) => validationCodec(common.keyHandleOf(key, resolved, topic), keyName(key), topic, "key", json)
        )),
    fields: (ref) => Effect.suspend(() => common.fields(ref))
  }
}
