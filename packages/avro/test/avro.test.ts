import { AvroBackend } from "@deimos/avro"
import { SchemaRegistry } from "@deimos/broker"
import { SchemaRef } from "@deimos/core"
import { describe, expect, it } from "@effect/vitest"
import { SchemaRegistry as Client, SchemaType } from "@kafkajs/confluent-schema-registry"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { schemaDir, valid, Widget } from "./fixtures.js"

const local = AvroBackend.makeLocal({ schemaDirs: [schemaDir] })
const topic = "widgets"

describe("avroLocal", () => {
  it.effect("validation errors list the field paths: missing, wrong type, undeclared", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(local.encode({ ...valid, name: undefined }, { schema: Widget, topic }))
      expect(missing.issues?.map((i) => i.path.join("."))).toEqual(["name"])
      const wrong = yield* Effect.flip(
        local.encode({ ...valid, dimensions: { width: "wide", height: 1 } }, { schema: Widget, topic })
      )
      expect(wrong.message).toContain("dimensions.width")
      const extra = yield* Effect.flip(local.encode({ ...valid, colour: "red" }, { schema: Widget, topic }))
      expect(extra.issues?.map((i) => i.path.join("."))).toEqual(["colour"])
    }))

  it.effect("an unknown schema name is an error naming the directories searched", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        local.encode({}, { schema: SchemaRef.make({ name: "com.example.Nope" }), topic })
      )
      expect(error.reason).toBe("UnknownSchema")
      expect(error.message).toContain("com.example.Nope")
      expect(error.message).toContain(schemaDir)
    }))

  it.effect("named types resolve across files (Dimensions.avsc used by Widget.avsc)", () =>
    Effect.gen(function*() {
      const bytes = yield* local.encode(valid, { schema: Widget, topic })
      const decoded = yield* local.decode(bytes, { schema: Widget, topic })
      expect(decoded).toMatchObject({ dimensions: { width: 1, height: 2 } })
    }))

  it.effect("coercion keeps timestamp-millis and -micros precision (Deimos #97) and recurses into unions", () =>
    Effect.gen(function*() {
      const at = new Date("2024-05-06T07:08:09.123Z")
      const coerced = (yield* local.coerce({
        ...valid,
        id: "42",
        price: "9.5",
        updated_at: at,
        seen_at_micros: at,
        tags: [1, true],
        dimensions: { width: "3", height: "4.5" }
      }, Widget)) as Record<string, unknown>
      expect(coerced.updated_at).toBe(at.getTime())
      expect(coerced.seen_at_micros).toBe(at.getTime() * 1000)
      expect(coerced).toMatchObject({ id: 42, price: 9.5, tags: ["1", "true"], dimensions: { width: 3, height: 4.5 } })
      const micros = (yield* local.coerce({ ...valid, seen_at_micros: "1700000000123456" }, Widget)) as Widget
      const roundTrip = (yield* local.decode(yield* local.encode(micros, { schema: Widget, topic }), {
        schema: Widget,
        topic
      })) as Widget
      expect(roundTrip.seen_at_micros).toBe(1_700_000_000_123_456)
    }))

  it.effect("schemaFields describes types, nullability, enums, defaults and SQL types", () =>
    Effect.gen(function*() {
      const fields = Object.fromEntries((yield* local.schemaFields(Widget)).map((f) => [f.name, f]))
      expect(fields.id).toMatchObject({ type: "long", sqlType: "bigint", nullable: false })
      expect(fields.price).toMatchObject({ type: "double", nullable: true, hasDefault: true, default: null })
      expect(fields.status).toMatchObject({ type: "enum", symbols: ["ACTIVE", "RETIRED"], sqlType: "text" })
      expect(fields.updated_at).toMatchObject({ logicalType: "timestamp-millis", sqlType: "timestamp" })
      expect(fields.dimensions).toMatchObject({ type: "record", nullable: true, sqlType: "jsonb" })
    }))

  it.effect("truncated or random bytes are typed decode errors", () =>
    Effect.gen(function*() {
      const bytes = yield* local.encode(valid, { schema: Widget, topic })
      const truncated = yield* Effect.flip(local.decode(bytes.slice(0, 5), { schema: Widget, topic }))
      expect(truncated.reason).toBe("Decode")
      const random = yield* Effect.flip(local.decode(new Uint8Array([9, 9, 9, 9, 9, 9, 9]), { schema: Widget, topic }))
      expect(random._tag).toBe("SchemaError")
    }))

  it.effect("an Effect Schema on the handle types the payload; Avro validates the wire form", () =>
    Effect.gen(function*() {
      const Typed = SchemaRef.make({
        name: "com.example.Dimensions",
        schema: Schema.Struct({ width: Schema.Number, height: Schema.Number })
      })
      const bytes = yield* local.encode({ width: 1, height: 2 }, { schema: Typed, topic })
      expect(yield* local.decode(bytes, { schema: Typed, topic })).toEqual({ width: 1, height: 2 })
    }))
})

describe("avroSchemaRegistry", () => {
  it.layer(SchemaRegistry.layer({ port: 0 }))((it) => {
    const backend = Effect.map(
      SchemaRegistry.SchemaRegistry,
      ({ url }) => AvroBackend.makeSchemaRegistry({ url, schemaDirs: [schemaDir] })
    )

    it.effect("writes the Confluent wire format; a Confluent client decodes it; value and key subjects registered", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const b = yield* backend
        const bytes = yield* b.encode(valid, { schema: Widget, topic: "staging.widgets" })
        expect(bytes[0]).toBe(0)
        yield* b.encodeKey(7, { key: { _tag: "Field", field: "id", valueSchema: Widget }, topic: "staging.widgets" })
        const decoded = yield* Effect.promise(() => new Client({ host: url }).decode(Buffer.from(bytes)))
        expect(decoded).toMatchObject({ id: 1, name: "w" })
        const subjects = yield* Effect.promise(() => fetch(`${url}/subjects`).then((r) => r.json()))
        expect(subjects).toEqual(expect.arrayContaining(["staging.widgets-value", "staging.widgets-key"]))
        const key = yield* Effect.promise(() =>
          fetch(`${url}/subjects/staging.widgets-key/versions/latest`).then((r) => r.json())
        )
        expect(JSON.parse((key as { schema: string }).schema).name).toBe("com.example.Widget_key")
      }))

    it.effect("decoding only looks schemas up: it never registers (Deimos #159)", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const producerSide = yield* Effect.promise(async () => {
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
          }, { subject: "readers-value" })
          return client.encode(id, { id: 3, name: "old", updated_at: 5 })
        })
        const before = yield* Effect.promise(() =>
          fetch(`${url}/subjects`).then((r) => r.json() as Promise<Array<string>>)
        )
        // a consumer on the newer Widget schema reads the older message (reader/writer resolution, defaults filled)
        const decoded = yield* (yield* backend).decode(producerSide, { schema: Widget, topic: "readers" })
        expect(decoded).toMatchObject({ id: 3, name: "old", price: null, tags: [], status: "ACTIVE" })
        const after = yield* Effect.promise(() =>
          fetch(`${url}/subjects`).then((r) => r.json() as Promise<Array<string>>)
        )
        expect(after).toEqual(before)
      }))

    it.effect("wrong magic byte, unknown schema id and truncated bytes are typed decode errors", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const magic = yield* Effect.flip(b.decode(new Uint8Array([1, 0, 0, 0, 1, 2]), { schema: Widget, topic }))
        expect(magic.message).toContain("magic byte 1")
        const unknownId = yield* Effect.flip(
          b.decode(new Uint8Array([0, 0, 0, 0x7f, 0x7f, 2]), { schema: Widget, topic })
        )
        expect(unknownId.message).toContain("unknown to the registry")
        const good = yield* b.encode(valid, { schema: Widget, topic })
        const truncated = yield* Effect.flip(b.decode(good.slice(0, 8), { schema: Widget, topic }))
        expect(truncated.reason).toBe("Decode")
      }))

    it.effect("an incompatible registration surfaces the registry's 409 with the subject", () =>
      Effect.gen(function*() {
        const b = yield* backend
        yield* b.encode(valid, { schema: Widget, topic: "compat" })
        const Breaking = SchemaRef.make({
          name: "com.example.Widget",
          avro: {
            type: "record",
            name: "Widget",
            namespace: "com.example",
            fields: [{ name: "id", type: "string" }, { name: "sku", type: "string" }]
          }
        })
        const error = yield* Effect.flip(b.encode({ id: "x", sku: "y" }, { schema: Breaking, topic: "compat" }))
        expect(error.reason).toBe("Registry")
        expect(error.message).toContain("409")
        expect(error.message).toContain("compat-value")
      }))

    it.effect("with register: false, encoding a schema the registry lacks fails instead of registering", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const lookupOnly = AvroBackend.makeSchemaRegistry({ url, schemaDirs: [schemaDir], register: false })
        const error = yield* Effect.flip(lookupOnly.encode(valid, { schema: Widget, topic: "never-registered" }))
        expect(error.message).toContain("40401")
      }))
  })

  it.live("an unreachable registry is a retriable typed error after retries with backoff", () =>
    Effect.gen(function*() {
      const b = AvroBackend.makeSchemaRegistry({
        url: "http://127.0.0.1:1",
        schemaDirs: [schemaDir],
        retries: 2,
        auth: { username: "u", password: Redacted.make("p") }
      })
      const started = Date.now()
      const error = yield* Effect.flip(b.encode(valid, { schema: Widget, topic }))
      expect(error).toMatchObject({ reason: "Registry", retriable: true })
      expect(error.message).toContain("unreachable")
      // two retries with backoff happened (100 ms + 200 ms)
      expect(Date.now() - started).toBeGreaterThanOrEqual(250)
    }))
})
