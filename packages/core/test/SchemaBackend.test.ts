import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as JsonBackend from "../src/JsonBackend.js"
import * as MockBackend from "../src/MockBackend.js"
import * as SchemaBackend from "../src/SchemaBackend.js"
import * as SchemaError from "../src/SchemaError.js"
import * as SchemaRef from "../src/SchemaRef.js"
import { Widget, WidgetKey } from "./fixtures.js"

const json = JsonBackend.json
const topic = "widgets"

describe("SchemaRef", () => {
  it("splits a full name into namespace and name and names the key schema", () => {
    const ref = SchemaRef.make<{ a: string }>({ name: "com.example.Thing" })
    expect(ref.name).toBe("Thing")
    expect(ref.namespace).toBe("com.example")
    expect(ref.fullName).toBe("com.example.Thing")
    expect(SchemaRef.keySchemaName(ref)).toBe("Thing_key")
    expect(SchemaRef.isSchemaRef(ref)).toBe(true)
    expect(SchemaRef.isSchemaRef({ name: "x" })).toBe(false)
  })
})

describe("SchemaBackend.make", () => {
  it.effect("resolves a codec once per handle and topic, and asks again after a failure", () =>
    Effect.gen(function*() {
      const asked: Array<string> = []
      let fail = true
      const backend = SchemaBackend.make({
        name: "counting",
        codec: (ref, t) =>
          Effect.suspend(() => {
            asked.push(`${ref.name}@${t}`)
            if (t === "flaky" && fail) {
              fail = false
              return Effect.fail(new SchemaError.SchemaError({ reason: "Registry", retriable: true, message: "down" }))
            }
            return MockBackend.mock.codec(ref, t, "write")
          }),
        keyCodec: MockBackend.mock.keyCodec,
        fields: MockBackend.mock.fields
      })
      const first = yield* backend.codec(Widget, "a", "write")
      expect(yield* backend.codec(Widget, "a", "write")).toBe(first)
      yield* backend.codec(Widget, "b", "write")
      expect((yield* Effect.flip(backend.codec(Widget, "flaky", "write"))).reason).toBe("Registry")
      yield* backend.codec(Widget, "flaky", "write")
      yield* backend.codec(Widget, "flaky", "write")
      // what a codec is resolved for is part of what is cached: a reader is resolved on its own
      yield* backend.codec(Widget, "a", "read")
      expect(asked).toEqual(["Widget@a", "Widget@b", "Widget@flaky", "Widget@flaky", "Widget@a"])
    }))

  it.effect("the codec's encode and decode are synchronous and answer Either", () =>
    Effect.gen(function*() {
      const codec = yield* MockBackend.mockValidating.codec(Widget, topic, "write")
      const bytes = codec.encode({ id: 1, name: "bolt" })
      if (Either.isLeft(bytes)) throw bytes.left
      expect(codec.decode(bytes.right)).toEqual(Either.right({ id: 1, name: "bolt" }))
      expect(Either.isLeft(codec.encode({ id: "x" }))).toBe(true)
      expect(codec.load(new Uint8Array([1]))).toBeUndefined()
      // and the effectful helpers resolve and run it
      const again = yield* SchemaBackend.encode(Widget, topic, { id: "2", name: "nut" }).pipe(
        Effect.provideService(SchemaBackend.SchemaBackend, MockBackend.mockValidating)
      )
      expect(
        yield* SchemaBackend.decode(Widget, topic, again).pipe(
          Effect.provideService(SchemaBackend.SchemaBackend, MockBackend.mockValidating)
        )
      ).toEqual({ id: 2, name: "nut" })
    }))
})

describe("JSON backend", () => {
  it.effect("round-trips a payload through UTF-8 JSON", () =>
    Effect.gen(function*() {
      const codec = yield* json.codec(Widget, topic, "write")
      const payload = { id: 1, name: "bolt", tags: ["a"], timestamp: new Date(1_700_000_000_123) }
      const bytes = yield* codec.encode(payload)
      expect(new TextDecoder().decode(bytes)).toContain("\"name\":\"bolt\"")
      expect(yield* codec.decode(bytes)).toEqual(payload)
    }))

  it.effect("validation errors list every field path", () =>
    Effect.gen(function*() {
      const codec = yield* json.codec(Widget, topic, "write")
      const error = yield* Effect.flip(codec.encode({ id: "x", dimensions: { width: "wide", height: 2 } }))
      expect(error.reason).toBe("Validation")
      const paths = error.issues?.map((i) => i.path.join("."))
      expect(paths).toEqual(expect.arrayContaining(["id", "name", "dimensions.width"]))
      expect(error.message).toContain("dimensions.width")
      expect(error.message).toContain("com.example.Widget")
    }))

  it.effect("rejects extra fields", () =>
    Effect.gen(function*() {
      const codec = yield* json.codec(Widget, topic, "write")
      const error = yield* Effect.flip(codec.validate({ id: 1, name: "a", colour: "red" }))
      expect(error.issues?.map((i) => i.path.join("."))).toEqual(["colour"])
    }))

  it.effect("decoding bytes that are not JSON is a typed Decode error", () =>
    Effect.gen(function*() {
      const codec = yield* json.codec(Widget, topic, "write")
      const error = yield* Effect.flip(codec.decode(new Uint8Array([0, 1, 2, 255])))
      expect(error._tag).toBe("SchemaError")
      expect(error.reason).toBe("Decode")
    }))

  it.effect("a schema handle without an Effect Schema cannot be resolved: an UnknownSchema error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(json.codec(SchemaRef.make({ name: "Nope" }), topic, "read"))
      expect(error.reason).toBe("UnknownSchema")
      expect(error.message).toContain("SchemaRef.fromSchema")
    }))

  it.effect("coerces numeric strings, dates and nested values", () =>
    Effect.gen(function*() {
      const codec = yield* json.codec(Widget, topic, "write")
      const coerced = codec.coerce({
        id: "12",
        name: 5,
        price: "9.5",
        dimensions: { width: "3", height: 4 },
        timestamp: "2024-01-02T03:04:05.678Z"
      })
      expect(coerced).toEqual({
        id: 12,
        name: "5",
        price: 9.5,
        dimensions: { width: 3, height: 4 },
        timestamp: new Date("2024-01-02T03:04:05.678Z")
      })
      yield* codec.validate(coerced)
    }))

  it.effect("coerces the values of a map (a string-keyed Schema.Record), as those of a record", () =>
    Effect.gen(function*() {
      const Prices = SchemaRef.fromSchema(
        Schema.Struct({ sku: Schema.String, prices: Schema.Record({ key: Schema.String, value: Schema.Number }) }),
        { name: "Prices", namespace: "com.example" }
      )
      const input = { sku: 7, prices: { eur: "9.5", usd: 10 } }
      expect((yield* json.codec(Prices, topic, "write")).coerce(input)).toEqual({
        sku: "7",
        prices: { eur: 9.5, usd: 10 }
      })
      expect((yield* MockBackend.mockValidating.codec(Prices, topic, "write")).coerce(input)).toEqual({
        sku: "7",
        prices: { eur: 9.5, usd: 10 }
      })
    }))

  it.effect("reports schema fields", () =>
    Effect.gen(function*() {
      const fields = yield* json.fields(Widget)
      const byName = Object.fromEntries(fields.map((f) => [f.name, f]))
      expect(byName.id).toMatchObject({ type: "long", nullable: false })
      expect(byName.name).toMatchObject({ type: "string" })
      expect(byName.price).toMatchObject({ type: "double", nullable: true })
      expect(byName.timestamp).toMatchObject({ logicalType: "timestamp-millis" })
      expect(byName.tags.type).toBe("array")
    }))

  it.effect("encodes field keys as a one-field record and decodes them back to the value", () =>
    Effect.gen(function*() {
      const key = { _tag: "Field", field: "id", valueSchema: Widget } as const
      const codec = yield* json.keyCodec(key, topic, "write")
      const bytes = yield* codec.encode(codec.coerce("7"))
      expect(new TextDecoder().decode(bytes)).toBe("{\"id\":7}")
      expect(yield* codec.decode(bytes)).toBe(7)
      const bad = yield* Effect.flip(json.keyCodec({ ...key, field: "nope" }, topic, "write"))
      expect(bad.reason).toBe("Key")
    }))

  it.effect("encodes keys with a key schema", () =>
    Effect.gen(function*() {
      const codec = yield* json.keyCodec({ _tag: "Schema", schema: WidgetKey }, topic, "write")
      const bytes = yield* codec.encode({ region: "eu", id: 1 })
      expect(yield* codec.decode(bytes)).toEqual({ region: "eu", id: 1 })
      const error = yield* Effect.flip(codec.encode({ region: 1 }))
      expect(error.reason).toBe("Validation")
    }))
})

describe("mock backends", () => {
  it.effect("the mock keeps dates, bigints and bytes and does not validate", () =>
    Effect.gen(function*() {
      const codec = yield* MockBackend.mock.codec(Widget, topic, "write")
      const payload = { when: new Date(5), big: 12345678901234567890n, raw: new Uint8Array([1, 2]), id: "not-int" }
      expect(yield* codec.decode(yield* codec.encode(payload))).toEqual(payload)
      yield* codec.validate({ anything: true })
    }))

  it.effect("a value JSON cannot hold is an Encode error, not a throw", () =>
    Effect.gen(function*() {
      const codec = yield* MockBackend.mock.codec(Widget, topic, "write")
      const cyclic: Record<string, unknown> = {}
      cyclic.self = cyclic
      const error = yield* Effect.flip(codec.encode(cyclic))
      expect(error.reason).toBe("Encode")
    }))

  it.effect("the validating mock rejects invalid payloads with field paths and decodes typed values", () =>
    Effect.gen(function*() {
      const codec = yield* MockBackend.mockValidating.codec(Widget, topic, "write")
      const error = yield* Effect.flip(codec.encode({ id: 1.5, name: "x" }))
      expect(error.issues?.[0].path).toEqual(["id"])
      const payload = { id: 1, name: "x", timestamp: new Date(42) }
      expect(yield* codec.decode(yield* codec.encode(payload))).toEqual(payload)
    }))

  it.effect("the validating mock checks field keys with the field's schema, naming the field", () =>
    Effect.gen(function*() {
      const codec = yield* MockBackend.mockValidating.keyCodec(
        { _tag: "Field", field: "id", valueSchema: Widget },
        topic,
        "write"
      )
      expect(yield* codec.decode(yield* codec.encode(codec.coerce("7")))).toBe(7)
      const error = yield* Effect.flip(codec.encode("x"))
      expect(error.issues?.[0].path).toEqual(["id"])
    }))

  it.effect("a schema-less handle passes the validating mock unchecked, with fields from its Avro schema", () =>
    Effect.gen(function*() {
      const ref = SchemaRef.make<{ id: number }>({
        name: "Legacy",
        avro: {
          type: "record",
          name: "Legacy",
          fields: [{ name: "id", type: "long" }, {
            name: "at",
            type: ["null", { type: "long", logicalType: "timestamp-micros" }],
            default: null
          }]
        }
      })
      yield* (yield* MockBackend.mockValidating.codec(ref, topic, "write")).validate({ id: "whatever" })
      const fields = yield* MockBackend.mockValidating.fields(ref)
      expect(fields.map((f) => [f.name, f.type, f.logicalType, f.nullable])).toEqual([
        ["id", "long", undefined, false],
        ["at", "long", "timestamp-micros", true]
      ])
    }))

  it("Effect Schema types flow into schema handles", () => {
    const _ref = SchemaRef.fromSchema(Schema.Struct({ a: Schema.String }), { name: "A" })
    const typed: SchemaRef.Type<typeof _ref> = { a: "x" }
    expect(typed.a).toBe("x")
  })
})
