/**
 * Longs are exact or loud: every long in ±(2^53 − 1) is written and read exactly (avsc 5.7.9 alone flips the sign
 * of negative longs below −2^52, upstream avsc #455), anything outside is refused with a typed error.
 *
 * The expected bytes were written by Apache Avro for Python (test/longs.fixtures.py, run once with Debian's
 * python3-avro); the tests read the committed test/longs.fixtures.json only.
 */
import { AvroBackend } from "@deimos/avro"
import { SchemaRegistry } from "@deimos/broker"
import { MockBackend, SchemaBackend, SchemaRef } from "@deimos/core"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const fields = ["count", "at_micros", "at_millis"] as const
type Field = typeof fields[number]

interface Fixture {
  readonly schema: { readonly [key: string]: unknown }
  readonly longs: ReadonlyArray<
    { readonly value: string; readonly exact: boolean; readonly records: { readonly [f in Field]: string } }
  >
  readonly sweepSchema: { readonly [key: string]: unknown }
  readonly sweep: { readonly [value: string]: string }
}

const fixture = JSON.parse(
  fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "longs.fixtures.json"), "utf8")
) as Fixture

const Longs = SchemaRef.make<Record<Field, unknown>>({ name: "com.example.Longs", avro: fixture.schema })
const OneLong = SchemaRef.make<{ readonly value: unknown }>({ name: "com.example.Long", avro: fixture.sweepSchema })

type Backend = SchemaBackend.SchemaBackend.Service

// the pipeline steps: a producer's codec (resolved for writing) encodes, a consumer's (resolved for reading) decodes
const encode = (b: Backend, schema: SchemaRef.Any, payload: unknown, topic: string) =>
  Effect.flatMap(b.codec(schema, topic, "write"), (codec) => codec.encode(payload))
const decode = (b: Backend, schema: SchemaRef.Any, bytes: Uint8Array, topic: string) =>
  Effect.flatMap(b.codec(schema, topic, "read"), (codec) => SchemaBackend.decodeWith(codec, bytes))
const coerce = (b: Backend, schema: SchemaRef.Any, payload: unknown, topic: string) =>
  Effect.map(b.codec(schema, topic, "write"), (codec) => codec.coerce(payload))

/** The record holding `value` in `field`, 0 in the others (as the fixtures were written). */
const record = (field: Field, value: unknown): Record<Field, unknown> => ({
  count: 0,
  at_micros: 0,
  at_millis: 0,
  [field]: value
})

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")
const bytesOf = (text: string) => new Uint8Array(Buffer.from(text, "hex"))

const exact = fixture.longs.filter((l) => l.exact)
const refused = fixture.longs.filter((l) => !l.exact)

describe("the fixtures", () => {
  it("hold ±(2^52 − 1), ±2^52, ±(2^52 + 1), ±(2^53 − 1) as exact; ±2^53 and int64 min/max as refused", () => {
    expect(exact.map((l) => BigInt(l.value))).toEqual(
      [2n ** 52n - 1n, 2n ** 52n, 2n ** 52n + 1n, 2n ** 53n - 1n].flatMap((v) => [v, -v])
    )
    expect(refused.map((l) => BigInt(l.value))).toEqual([
      2n ** 53n,
      -(2n ** 53n),
      2n ** 63n - 1n,
      -(2n ** 63n - 1n),
      -(2n ** 63n)
    ])
  })
})

/** Encodes every exact value in every field and checks the Avro body is the fixture's, then reads the fixture back. */
const exactBothWays = (
  backend: Backend,
  topic: string,
  body: (bytes: Uint8Array) => Uint8Array,
  frame: (body: Uint8Array) => Uint8Array
) =>
  Effect.gen(function*() {
    for (const l of exact) {
      const value = Number(l.value)
      expect(BigInt(value)).toBe(BigInt(l.value))
      for (const field of fields) {
        const what = `${field} = ${l.value}`
        const bytes = yield* encode(backend, Longs, record(field, value), topic)
        expect(hex(body(bytes)), what).toBe(l.records[field])
        const decoded = yield* decode(backend, Longs, frame(bytesOf(l.records[field])), topic)
        expect(decoded, what).toEqual(record(field, value))
      }
    }
  })

/** Every refused value, as a number and as a bigint, in every field: a `Validation` error naming that field. */
const refusedOnEncode = (backend: Backend, topic: string, use: SchemaBackend.Use = "write") =>
  Effect.gen(function*() {
    const codec = yield* backend.codec(Longs, topic, use)
    for (const l of refused) {
      for (const value of [Number(l.value), BigInt(l.value)]) {
        for (const field of fields) {
          const what = `${field} = ${String(value)}`
          const errors = use === "write"
            ? [
              yield* Effect.flip(codec.encode(record(field, value))),
              yield* Effect.flip(codec.validate(record(field, value)))
            ]
            : [yield* Effect.flip(codec.validate(record(field, value)))]
          for (const error of errors) {
            expect(error.reason, what).toBe("Validation")
            expect(error.issues?.map((i) => i.path.join(".")), what).toEqual([field])
            expect(error.message, what).toContain(field)
          }
        }
      }
    }
  })

/** The fixture bytes of every refused value: a `Decode` error naming the schema and the exact range. */
const refusedOnDecode = (backend: Backend, topic: string, frame: (body: Uint8Array) => Uint8Array) =>
  Effect.gen(function*() {
    for (const l of refused) {
      for (const field of fields) {
        const what = `${field} = ${l.value}`
        const error = yield* Effect.flip(decode(backend, Longs, frame(bytesOf(l.records[field])), topic))
        expect(error.reason, what).toBe("Decode")
        expect(error.schema, what).toBe("com.example.Longs")
        expect(error.message, what).toContain("com.example.Longs")
        expect(error.message, what).toContain(`the long ${l.value} is outside the exact range`)
      }
    }
  })

const same = (bytes: Uint8Array) => bytes

describe("avroLocal", () => {
  const local = Effect.runSync(AvroBackend.makeLocal())
  const topic = "longs"

  it.effect("writes the bytes Avro for Python writes and reads them back exactly, up to ±(2^53 − 1)", () =>
    exactBothWays(local, topic, same, same))

  it.effect("refuses a long outside ±(2^53 − 1) with a Validation error naming the field", () =>
    refusedOnEncode(local, topic))

  it.effect("refuses to decode a long outside ±(2^53 − 1) (int64 min and max, ±2^53) with a Decode error", () =>
    refusedOnDecode(local, topic, same))

  it.effect("every power of two to 2^63 with its neighbours, both signs: exact bytes both ways, or refused", () =>
    Effect.gen(function*() {
      for (const [text, expected] of Object.entries(fixture.sweep)) {
        const value = BigInt(text)
        if (value >= -(2n ** 53n - 1n) && value <= 2n ** 53n - 1n) {
          const bytes = yield* encode(local, OneLong, { value: Number(value) }, topic)
          expect(hex(bytes), text).toBe(expected)
          expect(yield* decode(local, OneLong, bytesOf(expected), topic), text).toEqual({ value: Number(value) })
        } else {
          const encoded = yield* Effect.flip(encode(local, OneLong, { value }, topic))
          expect(encoded.reason, text).toBe("Validation")
          const decoded = yield* Effect.flip(decode(local, OneLong, bytesOf(expected), topic))
          expect(decoded.message, text).toContain(`the long ${text} is outside the exact range`)
        }
      }
    }))

  it.effect("a varint longer than a long's ten bytes is a Decode error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(decode(local, OneLong, bytesOf("ffffffffffffffffffff01"), topic))
      expect(error.reason).toBe("Decode")
      expect(error.message).toContain("longer than a long's 10")
    }))

  it.effect("a long key field (the generated key record) is exact both ways and refused outside", () =>
    Effect.gen(function*() {
      const key = { _tag: "Field", field: "count", valueSchema: Longs } as const
      const writer = yield* local.keyCodec(key, topic, "write")
      const reader = yield* local.keyCodec(key, topic, "read")
      for (const value of [-(2 ** 52 + 1), -(2 ** 53 - 1), 2 ** 53 - 1]) {
        // the key record holds one long, as the sweep's record does
        const bytes = yield* writer.encode(value)
        expect(hex(bytes), String(value)).toBe(fixture.sweep[String(value)])
        expect(yield* SchemaBackend.decodeWith(reader, bytes), String(value)).toBe(value)
      }
      const error = yield* Effect.flip(writer.encode(2 ** 53))
      expect(error.reason).toBe("Validation")
      const decoded = yield* Effect.flip(
        SchemaBackend.decodeWith(reader, bytesOf(fixture.sweep["-9223372036854775808"]))
      )
      expect(decoded.reason).toBe("Decode")
    }))

  it.effect("a truncated long is a Decode error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(decode(local, OneLong, bytesOf("ffffffffffffff"), topic))
      expect(error.reason).toBe("Decode")
      expect(error.message).toContain("truncated")
    }))
})

describe("avroSchemaRegistry", () => {
  it.layer(SchemaRegistry.layer({ port: 0 }))((it) => {
    const backend = Effect.flatMap(SchemaRegistry.SchemaRegistry, ({ url }) => AvroBackend.makeSchemaRegistry({ url }))
    /** The Confluent frame of a body, with the schema id the backend registered for the topic. */
    const framer = (b: Backend, topic: string) =>
      Effect.map(
        encode(b, Longs, record("count", 1), topic),
        (bytes) => (body: Uint8Array) => new Uint8Array(Buffer.concat([bytes.subarray(0, 5), body]))
      )

    it.effect("writes the bytes Avro for Python writes (after the 5-byte header) and reads them back exactly", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const frame = yield* framer(b, "longs")
        yield* exactBothWays(b, "longs", (bytes) => bytes.subarray(5), frame)
      }))

    it.effect("refuses a long outside ±(2^53 − 1) with a Validation error naming the field, writer or reader", () =>
      Effect.gen(function*() {
        const b = yield* backend
        yield* refusedOnEncode(b, "longs-refused", "write")
        yield* refusedOnEncode(b, "longs-refused", "read")
      }))

    it.effect("refuses to decode a long outside ±(2^53 − 1) with a Decode error, with and without a local schema", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const frame = yield* framer(b, "longs")
        yield* refusedOnDecode(b, "longs", frame)
        // read with the writer's schema from the registry
        const other = yield* backend
        const error = yield* Effect.flip(
          decode(
            other,
            SchemaRef.make({ name: "com.example.Elsewhere" }),
            frame(bytesOf(refused[0].records.count)),
            "longs"
          )
        )
        expect(error.reason).toBe("Decode")
        expect(error.message).toContain(`the long ${refused[0].value} is outside the exact range`)
      }))

    it.effect("a double or float reader of a long writer gets the double nearest each long, int64 min and max too", () =>
      Effect.gen(function*() {
        const b = yield* backend
        // the writer schema (one long) registered by encoding with it, then the fixtures in its frame
        const header = (yield* encode(b, OneLong, { value: 1 }, "promoted")).subarray(0, 5)
        for (const type of ["double", "float"]) {
          const reader = SchemaRef.make<{ readonly value: number }>({
            name: "com.example.Long",
            avro: { ...fixture.sweepSchema, fields: [{ name: "value", type }] }
          })
          for (const [text, body] of Object.entries(fixture.sweep)) {
            const bytes = new Uint8Array(Buffer.concat([header, bytesOf(body)]))
            // avsc does not round a long promoted to a float to float precision
            expect(yield* decode(b, reader, bytes, "promoted"), `${type} ${text}`).toEqual({ value: Number(text) })
          }
        }
      }))
  })
})

describe("avroValidation", () => {
  const validation = Effect.runSync(AvroBackend.makeValidation())
  const topic = "longs"

  it.effect("hands consumers exactly the longs the producer sent, up to ±(2^53 − 1)", () =>
    Effect.gen(function*() {
      for (const l of exact) {
        for (const field of fields) {
          const sent = record(field, Number(l.value))
          const bytes = yield* encode(validation, Longs, sent, topic)
          expect(yield* decode(validation, Longs, bytes, topic), `${field} = ${l.value}`).toEqual(sent)
        }
      }
    }))

  it.effect("refuses a long outside ±(2^53 − 1) with a Validation error naming the field", () =>
    refusedOnEncode(validation, topic))

  it.effect("refuses to hand a consumer a long outside ±(2^53 − 1) that reached it in the mock's bytes", () =>
    Effect.gen(function*() {
      for (const l of refused) {
        const bytes = yield* encode(MockBackend.mock, Longs, record("at_micros", BigInt(l.value)), topic)
        const error = yield* Effect.flip(decode(validation, Longs, bytes, topic))
        expect(error.reason).toBe("Validation")
        expect(error.issues?.map((i) => i.path.join("."))).toEqual(["at_micros"])
      }
    }))
})

describe("coercion never makes an inexact long", () => {
  const local = Effect.runSync(AvroBackend.makeLocal())
  const topic = "longs"
  const coerceEncode = (payload: unknown) =>
    Effect.flatMap(coerce(local, Longs, payload, topic), (coerced) => encode(local, Longs, coerced, topic))

  it.effect("bigints and integer strings in ±(2^53 − 1) become those numbers", () =>
    Effect.gen(function*() {
      for (const l of exact) {
        for (const given of [BigInt(l.value), l.value, ` ${l.value} `]) {
          const coerced = yield* coerce(local, Longs, record("count", given), topic)
          expect(coerced, `${typeof given} ${l.value}`).toEqual(record("count", Number(l.value)))
        }
      }
    }))

  it.effect("bigints and integer strings outside are left as they are and refused, the message showing them", () =>
    Effect.gen(function*() {
      for (const given of [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, "9007199254740993", "-9223372036854775808"]) {
        const coerced = yield* coerce(local, Longs, record("count", given), topic)
        expect(coerced).toEqual(record("count", given))
        const error = yield* Effect.flip(coerceEncode(record("count", given)))
        expect(error.reason).toBe("Validation")
        expect(error.issues?.map((i) => i.path.join("."))).toEqual(["count"])
        expect(error.message).toContain(typeof given === "bigint" ? `${given}n` : given)
      }
    }))

  it.effect("a date whose epoch micros are beyond 2^53 − 1 is refused in a timestamp-micros field, not rounded", () =>
    Effect.gen(function*() {
      const far = new Date("2300-01-01T00:00:00.000Z")
      const error = yield* Effect.flip(coerceEncode(record("at_micros", far)))
      expect(error.issues?.map((i) => i.path.join("."))).toEqual(["at_micros"])
      const iso = yield* Effect.flip(coerceEncode(record("at_micros", "2300-01-01T00:00:00.000001Z")))
      expect(iso.issues?.map((i) => i.path.join("."))).toEqual(["at_micros"])
      // the same dates are exact millis
      expect(yield* coerce(local, Longs, record("at_millis", far), topic)).toEqual(record("at_millis", far.getTime()))
    }))

  it.effect("far dates keep their exact millis in a timestamp-millis field (no detour through inexact micros)", () =>
    Effect.gen(function*() {
      // epoch millis whose micros (×1000) are not exact doubles: the detour floored them to the millisecond before
      for (const ms of [-72_061_321_326_371, -5_943_611_959_632_491, 8_639_999_999_999_999]) {
        const at = new Date(ms)
        expect(yield* coerce(local, Longs, record("at_millis", at), topic), String(ms)).toEqual(record("at_millis", ms))
        expect(yield* coerce(local, Longs, record("at_millis", at.toISOString()), topic), String(ms)).toEqual(
          record("at_millis", ms)
        )
      }
    }))
})

describe("a handle with an Effect Schema as codegen writes it (Schema.Int for a long, DateFromNumber for millis)", () => {
  const TypedSchema = Schema.Struct({ count: Schema.Int, at_micros: Schema.Int, at_millis: Schema.DateFromNumber })
  const Typed = SchemaRef.make({ name: "com.example.Longs", avro: fixture.schema, schema: TypedSchema })
  // a newer reader of the fixtures' records (a field added with a default): read through a resolver
  const Newer = SchemaRef.make({
    name: "com.example.Longs",
    avro: {
      ...fixture.schema,
      fields: [...(fixture.schema.fields as ReadonlyArray<unknown>), { name: "note", type: "string", default: "" }]
    },
    schema: Schema.Struct({ ...TypedSchema.fields, note: Schema.String })
  })
  const topic = "longs"
  // the Dates of the fixtures: the values in the range of a Date (±8.64e15 ms), where avsc alone flips the sign of
  // those below −2^52
  const dates = exact.filter((l) => Math.abs(Number(l.value)) <= 8.64e15)

  it.effect("encodes and decodes ±(2^53 − 1) exactly and refuses ±2^53", () =>
    Effect.gen(function*() {
      const local = yield* AvroBackend.makeLocal()
      for (const value of [2 ** 53 - 1, -(2 ** 53 - 1), -(2 ** 52 + 1)]) {
        const sent = { count: value, at_micros: value, at_millis: new Date(0) }
        expect(yield* decode(local, Typed, yield* encode(local, Typed, sent, topic), topic)).toEqual(sent)
      }
      for (const value of [2 ** 53, -(2 ** 53)]) {
        const error = yield* Effect.flip(
          encode(local, Typed, { count: value, at_micros: 0, at_millis: new Date(0) }, topic)
        )
        expect(error.reason).toBe("Validation")
        expect(error.issues?.map((i) => i.path.join("."))).toEqual(["count"])
      }
    }))

  it.effect("Dates keep their exact millis through the typed reader and writer, on every backend", () =>
    Effect.gen(function*() {
      const { url } = yield* SchemaRegistry.SchemaRegistry
      expect(dates.map((l) => l.value)).toContain("-4503599627370497")
      const local = yield* AvroBackend.makeLocal()
      const registry = yield* AvroBackend.makeSchemaRegistry({ url })
      const validation = yield* AvroBackend.makeValidation()
      const header = (yield* encode(registry, Typed, record("at_millis", new Date(0)), topic)).subarray(0, 5)
      for (const l of dates) {
        const ms = Number(l.value)
        const sent = record("at_millis", new Date(ms))
        for (
          const [name, b, body, frame] of [
            ["avroLocal", local, same, same],
            [
              "avroSchemaRegistry",
              registry,
              (bytes: Uint8Array) => bytes.subarray(5),
              (body: Uint8Array) => new Uint8Array(Buffer.concat([header, body]))
            ]
          ] as const
        ) {
          const what = `${name} ${l.value}`
          // the bytes Avro for Python writes for those millis, read back to that Date (directly and through a
          // resolver), never a sign-flipped or rounded one
          expect(hex(body(yield* encode(b, Typed, sent, topic))), what).toBe(l.records.at_millis)
          const read = (yield* decode(b, Typed, frame(bytesOf(l.records.at_millis)), topic)) as { at_millis: Date }
          expect(read.at_millis, what).toBeInstanceOf(Date)
          expect(read.at_millis.getTime(), what).toBe(ms)
          if (b === registry) {
            const newer = (yield* decode(b, Newer, frame(bytesOf(l.records.at_millis)), topic)) as { at_millis: Date }
            expect(newer.at_millis.getTime(), what).toBe(ms)
          }
        }
        const checked = (yield* decode(validation, Typed, yield* encode(validation, Typed, sent, topic), topic)) as {
          at_millis: Date
        }
        expect(checked.at_millis.getTime(), `avroValidation ${l.value}`).toBe(ms)
      }
      // a millis long beyond the range of a Date decodes to an invalid Date, as Schema.DateFromNumber does
      const far = exact.find((l) => l.value === "9007199254740991")!
      const invalid = (yield* decode(local, Typed, bytesOf(far.records.at_millis), topic)) as { at_millis: Date }
      expect(Number.isNaN(invalid.at_millis.getTime())).toBe(true)
    }).pipe(Effect.provide(SchemaRegistry.layer({ port: 0 }))))

  it.effect("a Date place is coerced from millis, numeric strings and safe bigints, exactly", () =>
    Effect.gen(function*() {
      const local = yield* AvroBackend.makeLocal()
      const ms = -(2 ** 52 + 1)
      for (const given of [ms, String(ms), BigInt(ms), new Date(ms).toISOString()]) {
        const coerced = (yield* coerce(local, Typed, { count: 0, at_micros: 0, at_millis: given }, topic)) as {
          at_millis: Date
        }
        expect(coerced.at_millis.getTime(), `${typeof given} ${String(given)}`).toBe(ms)
      }
      // a bigint beyond the safe integers is left for validation to refuse
      const error = yield* Effect.flip(
        Effect.flatMap(
          coerce(local, Typed, { count: 0, at_micros: 0, at_millis: 2n ** 60n }, topic),
          (coerced) => encode(local, Typed, coerced, topic)
        )
      )
      expect(error.issues?.map((i) => i.path.join("."))).toEqual(["at_millis"])
    }))
})
