import { AvroBackend } from "@deimos/avro"
import { SchemaRegistry } from "@deimos/broker"
import {
  Consumer,
  ConsumerProcessor,
  DeimosConfig,
  Producer,
  ProducerBackend,
  SchemaBackend,
  SchemaRef,
  SentMessages
} from "@deimos/core"
import { describe, expect, it } from "@effect/vitest"
import { SchemaRegistry as Client, SchemaType } from "@kafkajs/confluent-schema-registry"
import avro from "avsc"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { schemaDir, valid, Widget } from "./fixtures.js"
import { Widget as GeneratedWidget, WidgetSchema } from "./generated/index.js"
import * as Rich from "./generated/rich/index.js"

type Backend = SchemaBackend.SchemaBackend.Service

/** The `timestamp-millis` logical type as a Confluent client's user registers it with avsc: `Date`s. */
class DateType extends avro.types.LogicalType {
  protected override _fromValue(value: number): Date {
    return new Date(value)
  }
  protected override _toValue(value: unknown): unknown {
    return value instanceof Date ? value.getTime() : value
  }
  protected override _resolve(type: avro.Type): ((value: number) => Date) | undefined {
    return type.typeName === "long" || type.typeName === "logical:timestamp-millis"
      ? (value) => new Date(value)
      : undefined
  }
}

const local = Effect.runSync(AvroBackend.makeLocal({ schemaDirs: [schemaDir] }))
const topic = "widgets"

// the pipeline steps over a backend, as the producer and the consumer run them: resolve the codec (cached; a
// writer for the producer's steps, a reader for the consumer's), then its synchronous functions (decoding loads an
// unknown writer schema first)
const encode = (b: Backend, schema: SchemaRef.Any, payload: unknown, t = topic) =>
  Effect.flatMap(b.codec(schema, t, "write"), (codec) => codec.encode(payload))
const decode = (b: Backend, schema: SchemaRef.Any, bytes: Uint8Array, t = topic) =>
  Effect.flatMap(b.codec(schema, t, "read"), (codec) => SchemaBackend.decodeWith(codec, bytes))
const coerce = (b: Backend, schema: SchemaRef.Any, payload: unknown, t = topic) =>
  Effect.map(b.codec(schema, t, "write"), (codec) => codec.coerce(payload))
const validate = (b: Backend, schema: SchemaRef.Any, payload: unknown, t = topic) =>
  Effect.flatMap(b.codec(schema, t, "write"), (codec) => codec.validate(payload))
const fieldKey = { _tag: "Field" as const, field: "id", valueSchema: Widget }

describe("avroLocal", () => {
  it.effect("validation errors list the field paths: missing, wrong type, undeclared", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(encode(local, Widget, { ...valid, name: undefined }))
      expect(missing.issues?.map((i) => i.path.join("."))).toEqual(["name"])
      const wrong = yield* Effect.flip(encode(local, Widget, { ...valid, dimensions: { width: "wide", height: 1 } }))
      expect(wrong.message).toContain("dimensions.width")
      const extra = yield* Effect.flip(encode(local, Widget, { ...valid, colour: "red" }))
      expect(extra.issues?.map((i) => i.path.join("."))).toEqual(["colour"])
    }))

  it.effect("undeclared fields are found at any depth, with their paths", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        encode(local, Widget, { ...valid, dimensions: { width: 1, height: 2, depth: 3 } })
      )
      expect(error.reason).toBe("Validation")
      expect(error.issues?.map((i) => i.path.join("."))).toEqual(["dimensions.depth"])
      const validated = yield* Effect.flip(
        validate(local, Widget, { ...valid, dimensions: { width: 1, height: 2, depth: 3 } })
      )
      expect(validated.issues?.map((i) => i.path.join("."))).toEqual(["dimensions.depth"])
    }))

  it.effect("longs beyond 2^53 are a validation error, not silently rounded", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(encode(local, Widget, { ...valid, id: 2 ** 53 + 2 }))
      expect(error.reason).toBe("Validation")
      expect(error.issues?.map((i) => i.path.join("."))).toEqual(["id"])
    }))

  it.effect("an unknown schema name fails resolving the codec, naming the directories searched", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(local.codec(SchemaRef.make({ name: "com.example.Nope" }), topic, "write"))
      expect(error.reason).toBe("UnknownSchema")
      expect(error.message).toContain("com.example.Nope")
      expect(error.message).toContain(schemaDir)
    }))

  it.effect("a codec is resolved once per handle and topic; its functions are synchronous Eithers", () =>
    Effect.gen(function*() {
      const codec = yield* local.codec(Widget, topic, "write")
      expect(yield* local.codec(Widget, topic, "write")).toBe(codec)
      expect(yield* local.codec(Widget, "other", "write")).not.toBe(codec)
      expect(codec).toMatchObject({ schema: "com.example.Widget", topic })
      const bytes = codec.encode(valid)
      expect(Either.isRight(bytes)).toBe(true)
      expect(codec.load(Either.getOrThrow(bytes))).toBeUndefined()
      expect(Either.getOrThrow(codec.decode(Either.getOrThrow(bytes)))).toMatchObject({ id: 1, name: "w" })
    }))

  it.effect("named types resolve across files (Dimensions.avsc used by Widget.avsc)", () =>
    Effect.gen(function*() {
      const bytes = yield* encode(local, Widget, valid)
      const decoded = yield* decode(local, Widget, bytes)
      expect(decoded).toMatchObject({ dimensions: { width: 1, height: 2 } })
    }))

  it.effect("coercion keeps timestamp-millis and -micros precision (Deimos #97) and recurses into unions", () =>
    Effect.gen(function*() {
      const at = new Date("2024-05-06T07:08:09.123Z")
      const coerced = (yield* coerce(local, Widget, {
        ...valid,
        id: "42",
        price: "9.5",
        updated_at: at,
        seen_at_micros: at,
        tags: [1, true],
        dimensions: { width: "3", height: "4.5" }
      })) as Record<string, unknown>
      expect(coerced.updated_at).toBe(at.getTime())
      expect(coerced.seen_at_micros).toBe(at.getTime() * 1000)
      expect(coerced).toMatchObject({ id: 42, price: 9.5, tags: ["1", "true"], dimensions: { width: 3, height: 4.5 } })
      const micros = (yield* coerce(local, Widget, { ...valid, seen_at_micros: "1700000000123456" })) as Widget
      const roundTrip = (yield* decode(local, Widget, yield* encode(local, Widget, micros))) as Widget
      expect(roundTrip.seen_at_micros).toBe(1_700_000_000_123_456)
    }))

  it.effect("coercion leaves what needs no converting as it is, and never modifies the payload", () =>
    Effect.gen(function*() {
      const codec = yield* local.codec(Widget, topic, "write")
      expect(codec.coerce(valid)).toBe(valid)
      const loose = { ...valid, dimensions: { width: "3", height: 4 } }
      const coerced = codec.coerce(loose) as Widget
      expect(coerced).not.toBe(loose)
      expect(coerced.dimensions).toEqual({ width: 3, height: 4 })
      expect(coerced.tags).toBe(loose.tags)
      expect(loose.dimensions.width).toBe("3")
      expect(codec.coerce(null)).toBeNull()
    }))

  it.effect("coercion covers date days, maps, arrays of records and keys", () =>
    Effect.gen(function*() {
      const Event = SchemaRef.make<Record<string, unknown>>({
        name: "com.example.Event",
        avro: {
          type: "record",
          name: "Event",
          namespace: "com.example",
          fields: [
            { name: "day", type: { type: "int", logicalType: "date" } },
            { name: "counts", type: { type: "map", values: "long" } },
            {
              name: "lines",
              type: {
                type: "array",
                items: {
                  type: "record",
                  name: "Line",
                  fields: [{ name: "qty", type: "int" }, { name: "ok", type: "boolean" }]
                }
              }
            },
            { name: "at", type: ["null", { type: "long", logicalType: "timestamp-micros" }] }
          ]
        }
      })
      const coerced = yield* coerce(local, Event, {
        day: "2024-01-02",
        counts: { a: "3" },
        lines: [{ qty: "2", ok: 1 }],
        at: "2024-01-02T00:00:00.000Z"
      })
      expect(coerced).toEqual({
        day: 19724,
        counts: { a: 3 },
        lines: [{ qty: 2, ok: true }],
        at: Date.UTC(2024, 0, 2) * 1000
      })
      yield* validate(local, Event, coerced)
      const key = yield* local.keyCodec(fieldKey, topic, "write")
      const bytes = yield* key.encode(key.coerce("7"))
      expect(yield* SchemaBackend.decodeWith(key, bytes)).toBe(7)
    }))

  it.effect("fields describes types, nullability, enums and defaults", () =>
    Effect.gen(function*() {
      const fields = Object.fromEntries((yield* local.fields(Widget)).map((f) => [f.name, f]))
      expect(fields.id).toMatchObject({ type: "long", nullable: false, hasDefault: false })
      expect(fields.price).toMatchObject({ type: "double", nullable: true, hasDefault: true, default: null })
      expect(fields.status).toMatchObject({ type: "enum", symbols: ["ACTIVE", "RETIRED"], default: "ACTIVE" })
      expect(fields.updated_at).toMatchObject({ type: "long", logicalType: "timestamp-millis" })
      expect(fields.dimensions).toMatchObject({ type: "record", nullable: true })
      expect(fields.id).not.toHaveProperty("sqlType")
    }))

  it.effect("truncated or random bytes are typed decode errors", () =>
    Effect.gen(function*() {
      const bytes = yield* encode(local, Widget, valid)
      const truncated = yield* Effect.flip(decode(local, Widget, bytes.slice(0, 5)))
      expect(truncated.reason).toBe("Decode")
      const random = yield* Effect.flip(decode(local, Widget, new Uint8Array([9, 9, 9, 9, 9, 9, 9])))
      expect(random._tag).toBe("SchemaError")
    }))

  it.effect("an Effect Schema on the handle types the payload; Avro validates the wire form", () =>
    Effect.gen(function*() {
      const Typed = SchemaRef.make({
        name: "com.example.Dimensions",
        schema: Schema.Struct({ width: Schema.Number, height: Schema.Number })
      })
      const bytes = yield* encode(local, Typed, { width: 1, height: 2 })
      expect(yield* decode(local, Typed, bytes)).toEqual({ width: 1, height: 2 })
    }))

  it.effect("a generated handle decodes to its Effect Schema's type: Dates, defaults filled", () =>
    Effect.gen(function*() {
      const bytes = yield* encode(local, GeneratedWidget, { id: 4, name: "g", updated_at: new Date(1234) })
      const decoded = yield* decode(local, GeneratedWidget, bytes)
      expect(decoded).toEqual({
        id: 4,
        name: "g",
        price: null,
        tags: [],
        status: "ACTIVE",
        dimensions: null,
        attributes: {},
        updated_at: new Date(1234),
        seen_at_micros: null
      })
      expect(decoded.updated_at).toBeInstanceOf(Date)
      // what Effect Schema itself decodes from what avsc reads
      const plain = yield* decode(local, Widget, bytes)
      expect(decoded).toEqual(Schema.decodeUnknownSync(WidgetSchema)(plain))
      // a recursive generated record: Dates at every depth
      const node: Rich.Node = { value: 1, at: new Date(5), children: [{ value: 2, at: new Date(6) }], next: null }
      const tree = yield* decode(local, Rich.Node, yield* encode(local, Rich.Node, node))
      expect(tree).toEqual({ ...node, children: [{ value: 2, at: new Date(6), children: [], next: null }] })
      expect(tree.children?.[0].at).toBeInstanceOf(Date)
    }))

  it.effect("a generated handle writes what the wire form writes, and refuses what its Schema refuses, with paths", () =>
    Effect.gen(function*() {
      const payload = { id: 4, name: "g", updated_at: new Date(1234), dimensions: { width: 1, height: 2 } }
      const typed = yield* encode(local, GeneratedWidget, payload)
      expect([...typed]).toEqual([...(yield* encode(local, Widget, { ...payload, updated_at: 1234 }))])
      const refused = (value: unknown) => Effect.flip(encode(local, GeneratedWidget, value))
      const excess = yield* refused({ ...payload, colour: "red" })
      expect(excess.reason).toBe("Validation")
      expect(excess.issues?.map((i) => i.path.join("."))).toEqual(["colour"])
      const nested = yield* refused({ ...payload, dimensions: { width: 1, height: 2, depth: 3 } })
      // (Effect Schema also reports the other members of the NullOr it tried)
      expect(nested.issues?.map((i) => i.path.join("."))).toContain("dimensions.depth")
      const wrong = yield* refused({ ...payload, updated_at: 1234, id: 1.5 })
      expect(wrong.issues?.map((i) => i.path.join(".")).sort()).toEqual(["id", "updated_at"])
      const invalidDate = yield* refused({ ...payload, updated_at: new Date(NaN) })
      expect(invalidDate.issues?.map((i) => i.path.join("."))).toEqual(["updated_at"])
      yield* Effect.flip(validate(local, GeneratedWidget, { ...payload, colour: "red" }))
      yield* validate(local, GeneratedWidget, payload)
    }))

  it.effect("an asynchronous Effect Schema is a typed error naming the schema (codecs run Schemas synchronously)", () =>
    Effect.gen(function*() {
      const Slow = SchemaRef.make({
        name: "com.example.Dimensions",
        schema: Schema.Struct({
          width: Schema.Number.pipe(Schema.filterEffect(() => Effect.as(Effect.sleep("1 millis"), true))),
          height: Schema.Number
        })
      })
      // the effectful filter runs when decoding
      const bytes = yield* encode(local, Slow, { width: 1, height: 2 })
      const error = yield* Effect.flip(decode(local, Slow, bytes))
      expect(error).toMatchObject({ _tag: "SchemaError", reason: "Decode", schema: "com.example.Dimensions" })
      expect(error.message).toContain("asynchronous")
    }))

  it.effect("a Schema that refuses what Avro reads is still checked on decode (Effect Schema's errors)", () =>
    Effect.gen(function*() {
      // Avro reads doubles; this Schema accepts integers only
      const Whole = SchemaRef.make({
        name: "com.example.Dimensions",
        schema: Schema.Struct({ width: Schema.Int, height: Schema.Number })
      })
      const bytes = yield* encode(local, SchemaRef.make({ name: "com.example.Dimensions" }), { width: 1.5, height: 2 })
      const error = yield* Effect.flip(decode(local, Whole, bytes))
      expect(error.reason).toBe("Validation")
      expect(error.issues?.map((i) => i.path.join("."))).toEqual(["width"])
      expect(yield* decode(local, Whole, yield* encode(local, Whole, { width: 1, height: 2 }))).toEqual({
        width: 1,
        height: 2
      })
    }))
})

describe("coercion knows the Avro logical types for every handle (Deimos #97)", () => {
  const at = new Date("2024-05-06T07:08:09.123Z")

  it.effect("a generated handle: Date to micros in a timestamp-micros field, ISO strings keep their micro digits", () =>
    Effect.gen(function*() {
      const coerced = (yield* coerce(local, GeneratedWidget, {
        id: "7",
        name: "w",
        updated_at: "2024-05-06T07:08:09.123Z",
        seen_at_micros: at
      })) as GeneratedWidget
      // the payload side of DateFromNumber is a Date; the micros field is a plain Int: epoch micros, not millis
      expect(coerced.updated_at).toEqual(at)
      expect(coerced.seen_at_micros).toBe(at.getTime() * 1000)
      const iso = (yield* coerce(
        local,
        GeneratedWidget,
        { ...coerced, seen_at_micros: "2024-05-06T07:08:09.123456Z" }
      )) as GeneratedWidget
      expect(iso.seen_at_micros).toBe(at.getTime() * 1000 + 456)
      const decoded = yield* decode(local, GeneratedWidget, yield* encode(local, GeneratedWidget, iso))
      expect(decoded.seen_at_micros).toBe(1_714_979_289_123_456)
      // a handle without an Effect Schema: the same digits, through the Avro walk
      const plain = yield* coerce(local, Widget, { ...valid, seen_at_micros: "2024-05-06T07:08:09.123456+00:00" })
      expect((plain as Widget).seen_at_micros).toBe(1_714_979_289_123_456)
    }))

  it.effect("dates become days in date fields, map values are coerced, timestamps in maps keep micros", () =>
    Effect.gen(function*() {
      const coerced = (yield* coerce(local, Rich.Order, {
        id: 1,
        day: new Date("2024-01-02T23:00:00Z"),
        at_micros: "2024-01-02T00:00:00.000001Z",
        created: "2024-01-02T00:00:00.5Z",
        counts: { a: "3", b: 4 },
        stamps: { b: at, c: "2024-01-02T00:00:00.000002Z" },
        payment: { "com.shop.Card": { number: 4111, expires: "2024-01-03" } },
        lines: [{ sku: 1, qty: "2" }]
      })) as Record<string, unknown>
      expect(coerced).toMatchObject({
        day: 19724,
        at_micros: Date.UTC(2024, 0, 2) * 1000 + 1,
        created: new Date(Date.UTC(2024, 0, 2) + 500),
        counts: { a: 3, b: 4 },
        stamps: { b: at.getTime() * 1000, c: Date.UTC(2024, 0, 2) * 1000 + 2 },
        payment: { "com.shop.Card": { number: "4111", expires: 19725 } },
        lines: [{ sku: "1", qty: 2 }]
      })
      expect((yield* coerce(local, Rich.Order, { day: "2024-01-02" })) as object).toEqual({ day: 19724 })
    }))

  it.effect("through a Producer: a Date in a generated timestamp-micros field is sent as exact micros", () =>
    Effect.gen(function*() {
      const widgets = Producer.make({ topic: "widgets", schema: GeneratedWidget, keyConfig: { field: "id" } })
      yield* widgets.publish({ id: 1, name: "w", updated_at: at, seen_at_micros: at as unknown as number })
      const [message] = yield* Effect.flatMap(SentMessages.SentMessages, (sent) => sent.all)
      const decoded = (yield* decode(local, Widget, message.encodedPayload!)) as Widget
      expect(decoded.seen_at_micros).toBe(at.getTime() * 1000)
      expect(decoded.updated_at).toBe(at.getTime())
    }).pipe(
      Effect.provide(
        Layer.mergeAll(ProducerBackend.layerTest, Layer.orDie(AvroBackend.layerLocal()), DeimosConfig.layer())
      )
    ))
})

describe("bytes and fixed take Uint8Array (the core's bytes), for handles with and without an Effect Schema", () => {
  const Blob = SchemaRef.make<Record<string, unknown>>({
    name: "com.example.Blob",
    avro: {
      type: "record",
      name: "Blob",
      namespace: "com.example",
      fields: [
        { name: "data", type: "bytes" },
        { name: "tag", type: { type: "fixed", name: "Tag", size: 2 } },
        { name: "many", type: { type: "array", items: "bytes" } },
        { name: "byName", type: { type: "map", values: "Tag" } },
        { name: "maybe", type: ["null", "bytes"] }
      ]
    }
  })
  const blob = {
    data: new Uint8Array([1, 2]),
    tag: new Uint8Array([3, 4]),
    many: [new Uint8Array([5])],
    byName: { x: new Uint8Array([6, 7]) },
    maybe: new Uint8Array([8])
  }
  const plainBytes = (v: unknown): unknown =>
    v instanceof Uint8Array
      ? [...v]
      : Array.isArray(v)
      ? v.map(plainBytes)
      : typeof v === "object" && v !== null
      ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plainBytes(x)]))
      : v

  it.effect("avroLocal, avroValidation and avroSchemaRegistry encode, validate and decode them", () =>
    Effect.gen(function*() {
      const { url } = yield* SchemaRegistry.SchemaRegistry
      for (
        const b of [
          local,
          yield* AvroBackend.makeValidation(),
          yield* AvroBackend.makeSchemaRegistry({ url })
        ]
      ) {
        yield* validate(b, Blob, blob, "blobs")
        const decoded = yield* decode(b, Blob, yield* encode(b, Blob, blob, "blobs"), "blobs")
        expect(plainBytes(decoded)).toEqual(plainBytes(blob))
        expect((decoded as { data: unknown }).data).toBeInstanceOf(Uint8Array)
      }
      // the payload is not modified
      expect(Buffer.isBuffer(blob.data)).toBe(false)
      const wrong = yield* Effect.flip(encode(local, Blob, { ...blob, tag: new Uint8Array([1, 2, 3]) }))
      expect(wrong.issues?.map((i) => i.path.join("."))).toEqual(["tag"])
    }).pipe(Effect.provide(SchemaRegistry.layer({ port: 0 }))))
})

describe("a schema directory that cannot be loaded", () => {
  const dirWith = (files: Record<string, unknown>) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "deimos-avsc-"))
    for (const [name, json] of Object.entries(files)) {
      fs.writeFileSync(path.join(dir, name), typeof json === "string" ? json : JSON.stringify(json))
    }
    return dir
  }
  const withInner = (ref: string) => ({
    type: "record",
    name: "A",
    namespace: "com.example",
    fields: [
      { name: "inner", type: { type: "record", name: "Inner", fields: [{ name: "x", type: "int" }] } },
      { name: "z", type: ref }
    ]
  })

  it.effect("a referenced type no file defines fails every layer with a typed error naming the file and the type", () =>
    Effect.gen(function*() {
      const dir = dirWith({
        "A.avsc": withInner("com.example.Missing"),
        "B.avsc": { type: "record", name: "B", fields: [] }
      })
      for (
        const layer of [
          AvroBackend.layerLocal({ schemaDirs: [dir] }),
          AvroBackend.layerValidation({ schemaDirs: [dir] }),
          AvroBackend.layerSchemaRegistry({ url: "http://127.0.0.1:1", schemaDirs: [dir] })
        ]
      ) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(layer)))
        expect(Exit.isFailure(exit) && !Cause.isDie(exit.cause)).toBe(true)
        const error = Option.getOrThrow(Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none())
        expect(error).toMatchObject({ _tag: "SchemaError", reason: "UnknownSchema" })
        expect(error.message).toContain(path.join(dir, "A.avsc"))
        expect(error.message).toContain("com.example.Missing")
        expect(error.message).not.toContain("duplicate")
      }
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.effect("a file with nested types that references a type of a later file loads (no half-registered types)", () =>
    Effect.gen(function*() {
      const dir = dirWith({
        "A.avsc": withInner("com.example.Z"),
        "Z.avsc": { type: "record", name: "Z", namespace: "com.example", fields: [{ name: "z", type: "string" }] }
      })
      const b = yield* AvroBackend.makeLocal({ schemaDirs: [dir] })
      const A = SchemaRef.make<unknown>({ name: "com.example.A" })
      const value = { inner: { x: 1 }, z: { z: "zed" } }
      expect(yield* decode(b, A, yield* encode(b, A, value))).toEqual(value)
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.effect("bad JSON and types defined twice are typed errors naming the files", () =>
    Effect.gen(function*() {
      const bad = dirWith({ "Bad.avsc": "{ not json" })
      const json = yield* Effect.flip(AvroBackend.makeLocal({ schemaDirs: [bad] }))
      expect(json.message).toContain(path.join(bad, "Bad.avsc"))
      const twice = dirWith({
        "One.avsc": { type: "record", name: "Same", fields: [] },
        "Two.avsc": { type: "record", name: "Same", fields: [{ name: "x", type: "int" }] }
      })
      const duplicate = yield* Effect.flip(AvroBackend.makeLocal({ schemaDirs: [twice] }))
      expect(duplicate.message).toContain(path.join(twice, "Two.avsc"))
      expect(duplicate.message).toContain("Same")
      fs.rmSync(bad, { recursive: true, force: true })
      fs.rmSync(twice, { recursive: true, force: true })
    }))
})

describe("avroSchemaRegistry", () => {
  it.layer(SchemaRegistry.layer({ port: 0 }))((it) => {
    const backend = Effect.flatMap(
      SchemaRegistry.SchemaRegistry,
      ({ url }) => AvroBackend.makeSchemaRegistry({ url, schemaDirs: [schemaDir] })
    )
    const subjects = (url: string) =>
      Effect.promise(() => fetch(`${url}/subjects`).then((r) => r.json() as Promise<Array<string>>))

    it.effect("writes the Confluent wire format; a Confluent client decodes it; value and key subjects registered", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const b = yield* backend
        const bytes = yield* encode(b, Widget, valid, "staging.widgets")
        expect(bytes[0]).toBe(0)
        const key = yield* b.keyCodec(fieldKey, "staging.widgets", "write")
        yield* key.encode(key.coerce(7))
        const decoded = yield* Effect.promise(() => new Client({ host: url }).decode(Buffer.from(bytes)))
        expect(decoded).toMatchObject({ id: 1, name: "w" })
        expect(yield* subjects(url)).toEqual(expect.arrayContaining(["staging.widgets-value", "staging.widgets-key"]))
        const latest = yield* Effect.promise(() =>
          fetch(`${url}/subjects/staging.widgets-key/versions/latest`).then((r) => r.json())
        )
        expect(JSON.parse((latest as { schema: string }).schema).name).toBe("com.example.Widget_key")
      }))

    it.effect("a Confluent client's message decodes to the generated handle's type (Dates)", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const b = yield* backend
        yield* encode(b, Widget, valid, "typed")
        const bytes = yield* Effect.promise(async () => {
          const client = new Client({ host: url })
          const id = await client.getLatestSchemaId("typed-value")
          return client.encode(id, { ...valid, updated_at: 99 })
        })
        const decoded = yield* decode(b, GeneratedWidget, bytes, "typed")
        expect(decoded.updated_at).toEqual(new Date(99))
        expect(decoded).toMatchObject({ id: 1, name: "w", tags: ["a"], dimensions: { width: 1, height: 2 } })
      }))

    /** A message written by another producer (a Confluent client) with an older Widget schema, on `subject`. */
    const olderWidget = (url: string, subject: string) =>
      Effect.promise(async () => {
        const client = new Client({ host: url })
        const { id } = await client.register({
          type: SchemaType.AVRO,
          schema: JSON.stringify({
            type: "record",
            name: "Widget",
            namespace: "com.example",
            fields: [
              { name: "id", type: "long" },
              { name: "name", type: "string" },
              { name: "updated_at", type: { type: "long", logicalType: "timestamp-millis" } }
            ]
          })
        }, { subject })
        return {
          id,
          first: await client.encode(id, { id: 3, name: "old", updated_at: 5 }),
          second: await client.encode(id, { id: 4, name: "older", updated_at: 6 })
        }
      })

    it.scoped("a read codec never registers nor looks a subject up: it reads writer schemas by id (Deimos #159)", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        // an older Widget, written by another producer (a Confluent client) under a subject of its own
        const { first, id, second } = yield* olderWidget(url, "elsewhere-value")
        // every request of the consumer's backend goes through a proxy that records it
        const seen = yield* proxy(url)
        const consumerSide = yield* AvroBackend.makeSchemaRegistry({ url: seen.url, schemaDirs: [schemaDir] })
        // a handle the consumer has no local schema for: resolving it asks the registry nothing, and decoding
        // fetches the writer schema by id only
        const unknown = yield* consumerSide.codec(
          SchemaRef.make<unknown>({ name: "com.example.Unknown" }),
          "readers",
          "read"
        )
        expect(seen.requests).toEqual([])
        expect(yield* SchemaBackend.decodeWith(unknown, first)).toMatchObject({ id: 3, name: "old", updated_at: 5 })
        expect(seen.requests).toEqual([`GET /schemas/ids/${id}`])
        // handles with a local schema, and a key: resolving readers asks nothing either; decoding only reads
        // (reader/writer resolution, defaults filled), with the writer schema fetched above
        const codec = yield* consumerSide.codec(Widget, "readers", "read")
        const typed = yield* consumerSide.codec(GeneratedWidget, "readers", "read")
        const key = yield* consumerSide.keyCodec(fieldKey, "readers", "read")
        expect(seen.requests).toEqual([`GET /schemas/ids/${id}`])
        expect(yield* SchemaBackend.decodeWith(codec, first)).toMatchObject({
          id: 3,
          name: "old",
          price: null,
          tags: [],
          status: "ACTIVE"
        })
        expect(yield* SchemaBackend.decodeWith(codec, second)).toMatchObject({ id: 4, name: "older" })
        expect(yield* SchemaBackend.decodeWith(typed, second)).toMatchObject({ id: 4, updated_at: new Date(6) })
        expect(seen.requests).toEqual([`GET /schemas/ids/${id}`])
        const all = yield* subjects(url)
        expect(all).not.toContain("readers-value")
        expect(all).not.toContain("readers-key")
        // a reader validates and coerces like a writer, and refuses to encode, saying why
        expect(Either.isRight(codec.validate(codec.coerce(valid)))).toBe(true)
        for (const refused of [codec.encode(valid), key.encode(1)]) {
          expect(Either.isLeft(refused) && refused.left).toMatchObject({ _tag: "SchemaError", reason: "Encode" })
          expect(Either.isLeft(refused) && refused.left.message).toContain("resolved for reading")
        }
        expect(seen.requests).toEqual([`GET /schemas/ids/${id}`])
        // alternating writer ids with one codec: each message is read with its own writer schema
        const b = yield* backend
        const current = yield* encode(b, Widget, valid, "readers-current")
        for (const [bytes, expected] of [[current, valid], [first, { id: 3, name: "old" }], [current, valid]]) {
          expect(yield* decode(b, Widget, bytes as Uint8Array, "readers")).toMatchObject(expected as object)
        }
      }))

    it.scoped("a producer's write codecs register once; a consumer (ConsumerProcessor.make) makes no subject request", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        // the producer and the consumer are two apps, each with its backend, each behind a proxy that records
        const producerSeen = yield* proxy(url)
        const consumerSeen = yield* proxy(url)
        const producerSide = yield* AvroBackend.makeSchemaRegistry({ url: producerSeen.url, schemaDirs: [schemaDir] })
        const consumerSide = yield* AvroBackend.makeSchemaRegistry({ url: consumerSeen.url, schemaDirs: [schemaDir] })
        const value = yield* producerSide.codec(Widget, "orders", "write")
        const key = yield* producerSide.keyCodec(fieldKey, "orders", "write")
        const raws: Array<ConsumerProcessor.RawMessage> = []
        for (let i = 1; i <= 3; i++) {
          raws.push({
            topic: "orders",
            partition: 0,
            offset: String(i),
            key: yield* key.encode(key.coerce(i)),
            value: yield* value.encode(value.coerce({ ...valid, id: i })),
            headers: {},
            timestamp: "0"
          })
        }
        expect(producerSeen.requests).toEqual([
          "POST /subjects/orders-value/versions",
          "POST /subjects/orders-key/versions"
        ])
        const handled = yield* Ref.make<ReadonlyArray<unknown>>([])
        const consumer = Consumer.make({
          topic: "orders",
          groupId: "g",
          schema: Widget,
          keyConfig: { field: "id" },
          handle: (widget, metadata) => Ref.update(handled, (seen) => [...seen, [metadata.key, widget.id]])
        })
        const processor = yield* ConsumerProcessor.make(consumer).pipe(
          Effect.provideService(SchemaBackend.SchemaBackend, consumerSide),
          Effect.provide(DeimosConfig.layer())
        )
        expect(consumerSeen.requests).toEqual([])
        for (const raw of raws) yield* processor.message(raw)
        expect(yield* Ref.get(handled)).toEqual([[1, 1], [2, 2], [3, 3]])
        // the writer schemas of the value and the key, by id, once each: nothing else
        const idOf = (bytes: Uint8Array | null) => Buffer.from(bytes!).readInt32BE(1)
        expect([...consumerSeen.requests].sort()).toEqual(
          [`GET /schemas/ids/${idOf(raws[0].value)}`, `GET /schemas/ids/${idOf(raws[0].key)}`].sort()
        )
        expect(producerSeen.requests).toHaveLength(2)
      }))

    it.scoped("writer schemas are cached by id: a second message of that id makes no request", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const { first, id, second } = yield* olderWidget(url, "cached-value")
        const seen = yield* proxy(url)
        const b = yield* AvroBackend.makeSchemaRegistry({ url: seen.url, schemaDirs: [schemaDir] })
        const codec = yield* b.codec(Widget, "cached", "read")
        seen.requests.length = 0
        expect(yield* SchemaBackend.decodeWith(codec, first)).toMatchObject({ id: 3 })
        expect(yield* SchemaBackend.decodeWith(codec, second)).toMatchObject({ id: 4 })
        // another handle (no local schema: read with the writer's) still uses the cached writer schema
        const untyped = SchemaRef.make<unknown>({ name: "com.example.Unknown" })
        expect(yield* decode(b, untyped, second, "cached")).toMatchObject({ id: 4, name: "older" })
        expect(seen.requests).toEqual([`GET /schemas/ids/${id}`])
      }))

    it.scoped("decode does no I/O; load fetches an unknown writer schema once, however many load it at once", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const { first, id, second } = yield* olderWidget(url, "loads-value")
        const seen = yield* proxy(url)
        const b = yield* AvroBackend.makeSchemaRegistry({ url: seen.url, schemaDirs: [schemaDir] })
        const codec = yield* b.codec(SchemaRef.make<unknown>({ name: "com.example.Unknown" }), "loads", "read")
        // before the load: a typed error, and no request
        const early = codec.decode(first)
        expect(Either.isLeft(early) && early.left.reason).toBe("Decode")
        expect(Either.isLeft(early) && early.left.message).toContain("not loaded")
        expect(seen.requests).toEqual([])
        const loads = [first, second, first, second, first].map((bytes) => codec.load(bytes))
        expect(loads.every((load) => load !== undefined)).toBe(true)
        yield* Effect.all(loads as Array<Effect.Effect<void, unknown>>, { concurrency: "unbounded" })
        expect(seen.requests).toEqual([`GET /schemas/ids/${id}`])
        // once loaded: nothing to load, for this codec and every other of the backend
        expect(codec.load(first)).toBeUndefined()
        expect((yield* b.codec(Widget, "loads", "read")).load(second)).toBeUndefined()
        expect(Either.getOrThrow(codec.decode(second))).toMatchObject({ id: 4, name: "older" })
        yield* Effect.all([first, second].map((bytes) => codec.load(bytes) ?? Effect.void))
        expect(seen.requests.filter((r) => r.startsWith("GET"))).toEqual([`GET /schemas/ids/${id}`])
        // an id the registry does not know: load fails with a typed decode error
        const unknownId = new Uint8Array([0, 0, 0, 0x7f, 0x7f, 2])
        const error = yield* Effect.flip(codec.load(unknownId)!)
        expect(error).toMatchObject({ _tag: "SchemaError", reason: "Decode" })
        expect(error.message).toContain("unknown to the registry")
      }))

    it.scoped("an unknown writer schema id is asked for once per id per window; its miss is logged once", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const seen = yield* proxy(url)
        const logs: Array<string> = []
        const capture = Logger.make(({ message }) => {
          logs.push(Array.isArray(message) ? message.join(" ") : String(message))
        })
        const b = yield* AvroBackend.makeSchemaRegistry({ url: seen.url, schemaDirs: [schemaDir] })
        const codec = yield* b.codec(Widget, "misses", "read")
        const other = yield* b.codec(SchemaRef.make<unknown>({ name: "com.example.Unknown" }), "misses", "read")
        const [a, c] = [0x7f7f, 0x7f7e]
        const framed = (id: number) => new Uint8Array([0, 0, 0, id >> 8, id & 0xff, 2])
        const undecodable = (target: SchemaBackend.Codec<unknown>, id: number) =>
          Effect.map(Effect.flip(SchemaBackend.decodeWith(target, framed(id))), (error) => {
            expect(error).toMatchObject({ _tag: "SchemaError", reason: "Decode" })
            expect(error.message).toContain(`Schema id ${id} of a message on misses is unknown to the registry`)
          })
        const run = Effect.gen(function*() {
          // a run of messages with one unknown id, through two codecs of the backend: one request
          for (let i = 0; i < 20; i++) yield* undecodable(i % 2 === 0 ? codec : other, a)
          expect(seen.requests).toEqual([`GET /schemas/ids/${a}`])
          // another unknown id, met by many at once: one request more
          yield* Effect.all(Array.from({ length: 10 }, () => undecodable(codec, c)), { concurrency: "unbounded" })
          expect(seen.requests).toEqual([`GET /schemas/ids/${a}`, `GET /schemas/ids/${c}`])
          expect(logs.filter((line) => line.includes("unknown to the Schema Registry"))).toEqual([
            expect.stringContaining(`Schema id ${a} is unknown`),
            expect.stringContaining(`Schema id ${c} is unknown`)
          ])
          // a miss is kept for 30 seconds (unknownIdTtl): after that, the registry is asked again, once
          yield* TestClock.adjust("29 seconds")
          yield* undecodable(codec, a)
          expect(seen.requests).toHaveLength(2)
          yield* TestClock.adjust("2 seconds")
          for (let i = 0; i < 5; i++) yield* undecodable(codec, a)
          expect(seen.requests).toEqual([`GET /schemas/ids/${a}`, `GET /schemas/ids/${c}`, `GET /schemas/ids/${a}`])
        })
        yield* run.pipe(Effect.provide(Logger.add(capture)))
        // with unknownIdTtl 0, nothing is remembered: each message asks
        const uncached = yield* AvroBackend.makeSchemaRegistry({
          url: seen.url,
          schemaDirs: [schemaDir],
          unknownIdTtl: 0
        })
        const each = yield* uncached.codec(Widget, "misses", "read")
        seen.requests.length = 0
        for (let i = 0; i < 3; i++) yield* undecodable(each, a)
        expect(seen.requests).toEqual(Array(3).fill(`GET /schemas/ids/${a}`))
      }))

    it.effect("registers the schema as written: logical types and docs kept, so a Confluent client reads Dates", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const b = yield* backend
        const bytes = yield* encode(b, Widget, valid, "written")
        const key = yield* b.keyCodec({ _tag: "Field", field: "updated_at", valueSchema: Widget }, "written", "write")
        const keyBytes = yield* key.encode(valid.updated_at)
        const Documented = SchemaRef.make<Record<string, unknown>>({
          name: "com.example.Documented",
          avro: {
            type: "record",
            name: "Documented",
            namespace: "com.example",
            doc: "A documented record",
            fields: [
              { name: "at", type: { type: "long", logicalType: "timestamp-millis" }, doc: "When it happened" },
              { name: "day", type: { type: "int", logicalType: "date" } },
              { name: "id", type: { type: "string", logicalType: "uuid" } },
              { name: "size", type: "Dimensions", doc: "From another file" }
            ]
          }
        })
        yield* encode(b, Documented, { at: 1, day: 2, id: "u", size: { width: 1, height: 2 } }, "written-doc")
        const latest = (subject: string) =>
          Effect.promise(() =>
            fetch(`${url}/subjects/${subject}/versions/latest`).then((r) => r.json() as Promise<{ schema: string }>)
          ).pipe(Effect.map((r) => JSON.parse(r.schema) as { doc?: string; fields: Array<Record<string, unknown>> }))
        const value = yield* latest("written-value")
        const field = (name: string) => value.fields.find((f) => f.name === name)
        expect(value.doc).toBe("A widget, keyed by id")
        expect(field("updated_at")?.type).toEqual({ type: "long", logicalType: "timestamp-millis" })
        expect(field("seen_at_micros")?.type).toEqual(["null", { type: "long", logicalType: "timestamp-micros" }])
        // a type of another file, written out where it is first used
        expect((field("dimensions")?.type as Array<unknown>)[1]).toMatchObject({
          type: "record",
          name: "com.example.Dimensions",
          fields: [{ name: "width", type: "double" }, { name: "height", type: "double" }]
        })
        expect((yield* latest("written-key")).fields).toEqual([
          { name: "updated_at", type: { type: "long", logicalType: "timestamp-millis" } }
        ])
        const documented = yield* latest("written-doc-value")
        expect(documented).toMatchObject({
          doc: "A documented record",
          fields: [
            { name: "at", type: { type: "long", logicalType: "timestamp-millis" }, doc: "When it happened" },
            { name: "day", type: { type: "int", logicalType: "date" } },
            { name: "id", type: { type: "string", logicalType: "uuid" } },
            { name: "size", type: { type: "record", name: "com.example.Dimensions" }, doc: "From another file" }
          ]
        })
        // a Confluent client with a timestamp-millis logical type reads the value and the key with Dates
        const client = new Client({ host: url }, {
          [SchemaType.AVRO]: { logicalTypes: { "timestamp-millis": DateType } }
        })
        const decoded = yield* Effect.promise(() => client.decode(Buffer.from(bytes)))
        expect(decoded.updated_at).toEqual(new Date(valid.updated_at))
        expect(decoded).toMatchObject({ id: 1, name: "w", seen_at_micros: valid.seen_at_micros })
        expect(yield* Effect.promise(() => client.decode(Buffer.from(keyBytes)))).toEqual({
          updated_at: new Date(valid.updated_at)
        })
      }))

    it.scoped("registration is idempotent: the same schema twice, or written another way, is one version", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const seen = yield* proxy(url)
        const first = yield* AvroBackend.makeSchemaRegistry({ url: seen.url, schemaDirs: [schemaDir] })
        // the directory's Widget, and the same JSON with its keys in another order and its types written out
        const json = JSON.parse(fs.readFileSync(path.join(schemaDir, "com/example/Widget.avsc"), "utf8")) as {
          readonly [key: string]: unknown
        }
        const dimensions = JSON.parse(fs.readFileSync(path.join(schemaDir, "com/example/Dimensions.avsc"), "utf8"))
        const reversed = (o: unknown): unknown =>
          Array.isArray(o)
            ? o.map(reversed)
            : typeof o === "object" && o !== null
            ? Object.fromEntries(Object.entries(o).reverse().map(([k, v]) => [k, k === "default" ? v : reversed(v)]))
            : o
        const fields = (json.fields as Array<{ name: string; type: unknown }>).map((f) =>
          f.name === "dimensions" ? { ...f, type: ["null", { ...dimensions, namespace: undefined }] } : f
        )
        const Rewritten = SchemaRef.make<Widget>({
          name: "com.example.Widget",
          avro: reversed({ ...json, fields }) as SchemaRef.AvroSchema
        })
        const ids = new Set<number>()
        for (const handle of [Widget, Rewritten, Widget]) {
          ids.add(Buffer.from(yield* encode(first, handle, valid, "idempotent")).readInt32BE(1))
        }
        // the schema is registered as one text: one request for the two handles
        expect(seen.requests).toEqual(["POST /subjects/idempotent-value/versions"])
        // another backend (another app, or a restart) registers it again: the same id, still one version
        const second = yield* AvroBackend.makeSchemaRegistry({ url, schemaDirs: [schemaDir] })
        ids.add(Buffer.from(yield* encode(second, Widget, valid, "idempotent")).readInt32BE(1))
        expect(ids.size).toBe(1)
        const versions = yield* Effect.promise(() =>
          fetch(`${url}/subjects/idempotent-value/versions`).then((r) => r.json())
        )
        expect(versions).toEqual([1])
      }))

    it.scoped("a codec is resolved once per handle and topic: one registration per subject", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const seen = yield* proxy(url)
        const b = yield* AvroBackend.makeSchemaRegistry({ url: seen.url, schemaDirs: [schemaDir] })
        // concurrent and repeated resolutions, of the value and of the key
        const codecs = yield* Effect.all(
          [b.codec(Widget, "once", "write"), b.codec(Widget, "once", "write"), b.codec(Widget, "once", "write")],
          { concurrency: "unbounded" }
        )
        yield* b.keyCodec(fieldKey, "once", "write")
        const again = yield* b.codec(Widget, "once", "write")
        expect(again).toBe(codecs[2])
        yield* b.keyCodec(fieldKey, "once", "write")
        // another handle of the same schema on the same topic: the id is known
        yield* b.codec(SchemaRef.make<Widget>({ name: "com.example.Widget" }), "once", "write")
        for (let i = 0; i < 3; i++) yield* again.encode(again.coerce(valid))
        expect(seen.requests).toEqual(["POST /subjects/once-value/versions", "POST /subjects/once-key/versions"])
        // another topic is another subject
        yield* b.codec(Widget, "twice", "write")
        expect(seen.requests).toHaveLength(3)
      }))

    it.effect("an incompatible reader and writer pair is a typed decode error", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const bytes = yield* Effect.promise(async () => {
          const client = new Client({ host: url })
          const { id } = await client.register({
            type: SchemaType.AVRO,
            schema: JSON.stringify({
              type: "record",
              name: "Widget",
              namespace: "com.example",
              fields: [{ name: "id", type: "string" }, { name: "name", type: "string" }]
            })
          }, { subject: "incompatible-value" })
          return client.encode(id, { id: "x", name: "n" })
        })
        const error = yield* Effect.flip(decode(yield* backend, Widget, bytes, "incompatible"))
        expect(error.reason).toBe("Decode")
        expect(error.message).toContain("cannot be read as com.example.Widget")
      }))

    it.effect("random bytes are typed decode errors, never a crash", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const good = yield* encode(b, Widget, valid)
        // a seeded generator: magic byte 0 and a known schema id half of the time, so the body is read
        let seed = 42
        const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
        let failures = 0
        for (let i = 0; i < 300; i++) {
          const bytes = new Uint8Array(Math.floor(next() * 48))
          for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(next() * 256)
          if (i % 2 === 0 && bytes.length >= 5) bytes.set(good.subarray(0, 5))
          if (i % 10 === 1 && bytes.length >= 5) bytes.set([0, 0, 0, 0x7f, 0x7f])
          const exit = yield* Effect.exit(decode(b, Widget, bytes))
          if (Exit.isFailure(exit)) {
            expect(Cause.isDie(exit.cause)).toBe(false)
            const error = Cause.failureOption(exit.cause)
            expect(Option.map(error, (e) => e.reason)).toEqual(Option.some("Decode"))
            failures++
          }
        }
        expect(failures).toBeGreaterThan(250)
      }))

    it.effect("the subject option names the subjects registered", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const b = yield* AvroBackend.makeSchemaRegistry({
          url,
          schemaDirs: [schemaDir],
          subject: (topic, kind) => `${kind}s.${topic}`
        })
        yield* b.codec(Widget, "named", "write")
        yield* b.keyCodec(fieldKey, "named", "write")
        const all = yield* subjects(url)
        expect(all).toEqual(expect.arrayContaining(["values.named", "keys.named"]))
        expect(all).not.toContain("named-value")
      }))

    it.effect("the topicPrefix of DeimosConfig reaches the subjects through a Producer", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const widgets = Producer.make({ topic: "prefixed", schema: Widget, keyConfig: { field: "id" } })
        yield* widgets.publish(valid).pipe(
          Effect.provide(
            Layer.mergeAll(
              ProducerBackend.layerTest,
              AvroBackend.layerSchemaRegistry({ url, schemaDirs: [schemaDir] }),
              DeimosConfig.layer({ topicPrefix: "staging." })
            )
          )
        )
        const all = yield* subjects(url)
        expect(all).toEqual(expect.arrayContaining(["staging.prefixed-value", "staging.prefixed-key"]))
        expect(all).not.toContain("prefixed-value")
      }))

    it.effect("wrong magic byte, unknown schema id and truncated bytes are typed decode errors", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const magic = yield* Effect.flip(decode(b, Widget, new Uint8Array([1, 0, 0, 0, 1, 2])))
        expect(magic.message).toContain("magic byte 1")
        const unknownId = yield* Effect.flip(decode(b, Widget, new Uint8Array([0, 0, 0, 0x7f, 0x7f, 2])))
        expect(unknownId.message).toContain("unknown to the registry")
        const good = yield* encode(b, Widget, valid)
        const truncated = yield* Effect.flip(decode(b, Widget, good.slice(0, 8)))
        expect(truncated.reason).toBe("Decode")
      }))

    it.effect("resolving registers; an invalid payload is refused by encode, whatever the registry holds", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const b = yield* backend
        const codec = yield* b.codec(Widget, "resolved", "write")
        expect(yield* subjects(url)).toContain("resolved-value")
        const invalid = codec.encode({ ...valid, status: "LOST" })
        expect(Either.isLeft(invalid) && invalid.left.reason).toBe("Validation")
        expect(Either.isLeft(invalid) && invalid.left.issues?.map((i) => i.path.join("."))).toEqual(["status"])
      }))

    it.effect("an incompatible registration surfaces the registry's 409 with the subject, from encode", () =>
      Effect.gen(function*() {
        const b = yield* backend
        yield* encode(b, Widget, valid, "compat")
        const Breaking = SchemaRef.make({
          name: "com.example.Widget",
          avro: {
            type: "record",
            name: "Widget",
            namespace: "com.example",
            fields: [{ name: "id", type: "string" }, { name: "sku", type: "string" }]
          }
        })
        // the codec resolves (a consumer on it still reads what its schema can); encoding answers the refusal
        const codec = yield* b.codec(Breaking, "compat", "write")
        const error = yield* Effect.flip(codec.encode({ id: "x", sku: "y" }))
        expect(error.reason).toBe("Registry")
        expect(error.retriable).toBe(false)
        expect(error.message).toContain("409")
        expect(error.message).toContain("compat-value")
      }))

    it.effect("with register: false, a schema the registry lacks is not registered and cannot be encoded", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const lookupOnly = yield* AvroBackend.makeSchemaRegistry({ url, schemaDirs: [schemaDir], register: false })
        const error = yield* Effect.flip(encode(lookupOnly, Widget, valid, "never-registered"))
        expect(error.message).toContain("40401")
        expect(yield* subjects(url)).not.toContain("never-registered-value")
        // a schema that is registered under the subject is found
        yield* encode(yield* backend, Widget, valid, "registered")
        const bytes = yield* encode(lookupOnly, Widget, valid, "registered")
        expect(yield* decode(lookupOnly, Widget, bytes, "registered")).toMatchObject({ id: 1 })
      }))
  })

  it.scopedLive("an unreachable registry is a retriable typed error, after one attempt per retry", () =>
    Effect.gen(function*() {
      // a "registry" that drops every connection: each attempt is one connection
      const attempts = yield* listen(net.createServer((socket) => socket.destroy()))
      const b = yield* AvroBackend.makeSchemaRegistry({
        url: `http://127.0.0.1:${attempts.port}`,
        schemaDirs: [schemaDir],
        retries: 3,
        retrySchedule: Schedule.exponential("5 millis")
      })
      const error = yield* Effect.flip(b.codec(Widget, topic, "write"))
      expect(error).toMatchObject({ reason: "Registry", retriable: true })
      expect(error.message).toContain("unreachable")
      expect(attempts.count()).toBe(4)
    }))

  it.scopedLive("a registry that never answers times out per request: a retriable typed error, retried", () =>
    Effect.gen(function*() {
      // accepts connections and reads requests, but never answers (each attempt is one request; the HTTP client
      // may open a spare connection, so requests are counted, not connections)
      let requests = 0
      const hung = yield* listen(net.createServer((socket) => socket.once("data", () => requests++)))
      const url = `http://127.0.0.1:${hung.port}`
      const b = yield* AvroBackend.makeSchemaRegistry({
        url,
        schemaDirs: [schemaDir],
        requestTimeout: "200 millis",
        retries: 2,
        retrySchedule: Schedule.spaced("10 millis")
      })
      const started = Date.now()
      const error = yield* Effect.flip(b.codec(Widget, "slow", "write"))
      const elapsed = Date.now() - started
      expect(error).toMatchObject({ _tag: "SchemaError", reason: "Registry", retriable: true })
      expect(error.message).toContain(url)
      expect(error.message).toContain("POST /subjects/slow-value/versions")
      expect(error.message).toContain("200ms")
      // three attempts of 200 ms each; without the request timeout the first attempt would never end (30 s is
      // far below that and far above the 600 ms it takes)
      expect(requests).toBe(3)
      expect(elapsed).toBeGreaterThanOrEqual(3 * 200)
      expect(elapsed).toBeLessThan(30_000)
      // resolving again asks again (a failed resolution is not kept)
      yield* Effect.flip(b.codec(Widget, "slow", "write"))
      expect(requests).toBe(6)
    }))

  it.scopedLive("a registry failing with 503 is retried with backoff until it answers; basic auth is sent", () =>
    Effect.gen(function*() {
      const seen: Array<{ readonly url: string; readonly authorization: string | undefined }> = []
      const server = yield* listen(http.createServer((req, res) => {
        seen.push({ url: req.url ?? "", authorization: req.headers.authorization })
        res.setHeader("content-type", "application/json")
        if (seen.length <= 2) {
          res.statusCode = 503
          res.end(JSON.stringify({ error_code: 50003, message: "busy" }))
        } else {
          res.end(JSON.stringify({ id: 42 }))
        }
      }))
      const b = yield* AvroBackend.makeSchemaRegistry({
        url: `http://127.0.0.1:${server.port}`,
        schemaDirs: [schemaDir],
        auth: { username: "app", password: Redacted.make("s3cret") },
        retrySchedule: Schedule.exponential("5 millis")
      })
      const bytes = yield* encode(b, Widget, valid, "busy")
      expect([...bytes.subarray(0, 5)]).toEqual([0, 0, 0, 0, 42])
      expect(seen.map((r) => r.url)).toEqual(Array(3).fill("/subjects/busy-value/versions"))
      expect(seen[0].authorization).toBe(`Basic ${Buffer.from("app:s3cret").toString("base64")}`)
      // the codec and its id are kept: a second message makes no call
      yield* encode(b, Widget, valid, "busy")
      expect(seen).toHaveLength(3)
    }))

  it.effect("layerSchemaRegistryConfig reads the URL, schema directories and register flag from Config", () =>
    Effect.gen(function*() {
      const backend = yield* SchemaBackend.SchemaBackend
      expect(backend.name).toBe("avroSchemaRegistry")
      // register: false and an unreachable URL: resolving tries a lookup, fails typed, never crashes
      const error = yield* Effect.flip(backend.codec(Widget, topic, "write"))
      expect(error.reason).toBe("Registry")
      expect(error.message).toContain("POST /subjects/widgets-value)")
    }).pipe(
      Effect.provide(
        AvroBackend.layerSchemaRegistryConfig({
          url: Config.succeed("http://127.0.0.1:1"),
          schemaDirs: Config.succeed([schemaDir]),
          register: Config.succeed(false),
          auth: Config.succeed(undefined),
          retries: Config.succeed(0)
        })
      )
    ))

  it.effect("registryConfig reads every SCHEMA_REGISTRY_* variable, with the defaults documented", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) =>
        Effect.withConfigProvider(AvroBackend.registryConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))
      const full = yield* read({
        SCHEMA_REGISTRY_URL: "http://registry:8081",
        AVRO_SCHEMA_DIRS: "schemas, more ,",
        SCHEMA_REGISTRY_USERNAME: "app",
        SCHEMA_REGISTRY_PASSWORD: "s3cret",
        SCHEMA_REGISTRY_REGISTER: "false",
        SCHEMA_REGISTRY_RETRIES: "2",
        SCHEMA_REGISTRY_REQUEST_TIMEOUT: "250 millis",
        SCHEMA_REGISTRY_UNKNOWN_ID_TTL: "5 seconds"
      })
      expect(full).toMatchObject({
        url: "http://registry:8081",
        schemaDirs: ["schemas", "more"],
        register: false,
        retries: 2,
        auth: { username: "app" }
      })
      expect(Redacted.value(full.auth!.password)).toBe("s3cret")
      expect(Duration.toMillis(Duration.decode(full.requestTimeout!))).toBe(250)
      expect(Duration.toMillis(Duration.decode(full.unknownIdTtl!))).toBe(5_000)
      const defaults = yield* read({ SCHEMA_REGISTRY_URL: "http://registry:8081" })
      expect(defaults).toEqual({
        url: "http://registry:8081",
        schemaDirs: [],
        register: true,
        auth: undefined,
        retries: undefined,
        requestTimeout: undefined,
        unknownIdTtl: undefined
      })
      const missing = yield* Effect.flip(read({}))
      expect(String(missing)).toContain("SCHEMA_REGISTRY_URL")
    }))
})

/** A server listening on a free port, counting its connections; closing it ends the connections left open. */
const listen = (server: net.Server) => {
  const sockets = new Set<net.Socket>()
  return Effect.acquireRelease(
    Effect.async<{ readonly port: number; readonly count: () => number }>((resume) => {
      let count = 0
      server.on("connection", (socket) => {
        count++
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
      })
      server.listen(0, "127.0.0.1", () => {
        resume(Effect.succeed({
          port: (server.address() as net.AddressInfo).port,
          count: () => count
        }))
      })
    }),
    () =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        for (const socket of sockets) socket.destroy()
      })
  )
}

/** An HTTP proxy to `target` recording each request as `METHOD /path`. */
const proxy = (target: string) =>
  Effect.suspend(() => {
    const requests: Array<string> = []
    return Effect.map(
      listen(http.createServer((req, res) => {
        requests.push(`${req.method} ${req.url}`)
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => {
          const body = chunks.length === 0 ? undefined : Buffer.concat(chunks)
          fetch(target + (req.url ?? ""), {
            method: req.method ?? "GET",
            headers: { "content-type": String(req.headers["content-type"] ?? "application/json") },
            ...(body === undefined ? {} : { body })
          }).then(async (r) => {
            res.statusCode = r.status
            res.setHeader("content-type", r.headers.get("content-type") ?? "application/json")
            res.end(await r.text())
          }, () => {
            res.statusCode = 502
            res.end()
          })
        })
      })),
      ({ port }) => ({ url: `http://127.0.0.1:${port}`, requests })
    )
  })
