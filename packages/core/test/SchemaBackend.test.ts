import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SchemaBackend from "../src/SchemaBackend.js"
import * as SchemaRef from "../src/SchemaRef.js"
import { Widget, WidgetKey } from "./fixtures.js"

const json = SchemaBackend.json
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

describe("JSON backend", () => {
  it.effect("round-trips a payload through UTF-8 JSON", () =>
    Effect.gen(function*() {
      const payload = { id: 1, name: "bolt", tags: ["a"], timestamp: new Date(1_700_000_000_123) }
      const bytes = yield* json.encode(payload, { schema: Widget, topic })
      expect(new TextDecoder().decode(bytes)).toContain("\"name\":\"bolt\"")
      const decoded = yield* json.decode(bytes, { schema: Widget, topic })
      expect(decoded).toEqual(payload)
    }))

  it.effect("validation errors list every field path", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        json.encode({ id: "x", dimensions: { width: "wide", height: 2 } }, { schema: Widget, topic })
      )
      expect(error.reason).toBe("Validation")
      const paths = error.issues?.map((i) => i.path.join("."))
      expect(paths).toEqual(expect.arrayContaining(["id", "name", "dimensions.width"]))
      expect(error.message).toContain("dimensions.width")
      expect(error.message).toContain("com.example.Widget")
    }))

  it.effect("rejects extra fields", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(json.validate({ id: 1, name: "a", colour: "red" }, Widget))
      expect(error.issues?.map((i) => i.path.join("."))).toEqual(["colour"])
    }))

  it.effect("decoding bytes that are not JSON is a typed Decode error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(json.decode(new Uint8Array([0, 1, 2, 255]), { schema: Widget, topic }))
      expect(error._tag).toBe("SchemaError")
      expect(error.reason).toBe("Decode")
    }))

  it.effect("a schema handle without an Effect Schema is an UnknownSchema error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(json.encode({}, { schema: SchemaRef.make({ name: "Nope" }), topic }))
      expect(error.reason).toBe("UnknownSchema")
      expect(error.message).toContain("SchemaRef.fromSchema")
    }))

  it.effect("coerces numeric strings, dates and nested values", () =>
    Effect.gen(function*() {
      const coerced = yield* json.coerce({
        id: "12",
        name: 42,
        price: "9.5",
        dimensions: { width: "3", height: 4 },
        timestamp: "2024-01-02T03:04:05.678Z"
      }, Widget)
      expect(coerced).toEqual({
        id: 12,
        name: "42",
        price: 9.5,
        dimensions: { width: 3, height: 4 },
        timestamp: new Date("2024-01-02T03:04:05.678Z")
      })
    }))

  it.effect("coerces the values of a map (a string-keyed Schema.Record), as those of a record", () =>
    Effect.gen(function*() {
      const Prices = SchemaRef.fromSchema(
        Schema.Struct({ sku: Schema.String, prices: Schema.Record({ key: Schema.String, value: Schema.Number }) }),
        { name: "Prices", namespace: "com.example" }
      )
      const input = { sku: 7, prices: { eur: "9.5", usd: 10 } }
      expect(yield* json.coerce(input, Prices)).toEqual({ sku: "7", prices: { eur: 9.5, usd: 10 } })
      expect(yield* SchemaBackend.mockValidating.coerce(input, Prices)).toEqual({
        sku: "7",
        prices: { eur: 9.5, usd: 10 }
      })
    }))

  it.effect("reports schema fields with SQL types", () =>
    Effect.gen(function*() {
      const fields = yield* json.schemaFields(Widget)
      const byName = Object.fromEntries(fields.map((f) => [f.name, f]))
      expect(byName.id).toMatchObject({ type: "long", sqlType: "bigint", nullable: false })
      expect(byName.name).toMatchObject({ type: "string", sqlType: "text" })
      expect(byName.price).toMatchObject({ type: "double", nullable: true })
      expect(byName.timestamp).toMatchObject({ logicalType: "timestamp-millis", sqlType: "timestamp" })
      expect(byName.tags.type).toBe("array")
    }))

  it.effect("encodes field keys as a one-field record and decodes them back to the value", () =>
    Effect.gen(function*() {
      const key = { _tag: "Field", field: "id", valueSchema: Widget } as const
      const bytes = yield* json.encodeKey("7", { key, topic })
      expect(new TextDecoder().decode(bytes)).toBe("{\"id\":7}")
      expect(yield* json.decodeKey(bytes, { key, topic })).toBe(7)
      const bad = yield* Effect.flip(json.encodeKey(1, { key: { ...key, field: "nope" }, topic }))
      expect(bad.reason).toBe("Key")
    }))

  it.effect("encodes keys with a key schema", () =>
    Effect.gen(function*() {
      const key = { _tag: "Schema", schema: WidgetKey } as const
      const bytes = yield* json.encodeKey({ region: "eu", id: 1 }, { key, topic })
      expect(yield* json.decodeKey(bytes, { key, topic })).toEqual({ region: "eu", id: 1 })
      const error = yield* Effect.flip(json.encodeKey({ region: 1 }, { key, topic }))
      expect(error.reason).toBe("Validation")
    }))
})

describe("mock backends", () => {
  it.effect("the mock keeps dates, bigints and bytes and does not validate", () =>
    Effect.gen(function*() {
      const payload = { when: new Date(5), big: 12345678901234567890n, raw: new Uint8Array([1, 2]), id: "not-int" }
      const bytes = yield* SchemaBackend.mock.encode(payload, { schema: Widget, topic })
      expect(yield* SchemaBackend.mock.decode(bytes, { schema: Widget, topic })).toEqual(payload)
      yield* SchemaBackend.mock.validate({ anything: true }, Widget)
    }))

  it.effect("the validating mock rejects invalid payloads with field paths and decodes typed values", () =>
    Effect.gen(function*() {
      const backend = SchemaBackend.mockValidating
      const error = yield* Effect.flip(backend.encode({ id: 1.5, name: "x" }, { schema: Widget, topic }))
      expect(error.issues?.[0].path).toEqual(["id"])
      const payload = { id: 1, name: "x", timestamp: new Date(42) }
      const decoded = yield* backend.decode(yield* backend.encode(payload, { schema: Widget, topic }), {
        schema: Widget,
        topic
      })
      expect(decoded).toEqual(payload)
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
      yield* SchemaBackend.mockValidating.validate({ id: "whatever" }, ref)
      const fields = yield* SchemaBackend.mockValidating.schemaFields(ref)
      expect(fields.map((f) => [f.name, f.type, f.nullable, f.sqlType])).toEqual([
        ["id", "long", false, "bigint"],
        ["at", "long", true, "timestamp"]
      ])
    }))

  it("Effect Schema types flow into schema handles", () => {
    const _ref = SchemaRef.fromSchema(Schema.Struct({ a: Schema.String }), { name: "A" })
    const typed: SchemaRef.Type<typeof _ref> = { a: "x" }
    expect(typed.a).toBe("x")
  })
})
