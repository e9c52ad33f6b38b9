import { AvroBackend } from "@deimos/avro"
import { SchemaRegistry } from "@deimos/broker"
import { SchemaBackend, SchemaRef } from "@deimos/core"
import { describe, expect, it } from "@effect/vitest"
import { SchemaRegistry as Client, SchemaType } from "@kafkajs/confluent-schema-registry"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as http from "node:http"
import * as net from "node:net"
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

  it.effect("undeclared fields are found at any depth, with their paths", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        local.encode({ ...valid, dimensions: { width: 1, height: 2, depth: 3 } }, { schema: Widget, topic })
      )
      expect(error.reason).toBe("Validation")
      expect(error.issues?.map((i) => i.path.join("."))).toEqual(["dimensions.depth"])
      const validated = yield* Effect.flip(
        local.validate({ ...valid, dimensions: { width: 1, height: 2, depth: 3 } }, Widget)
      )
      expect(validated.issues?.map((i) => i.path.join("."))).toEqual(["dimensions.depth"])
    }))

  it.effect("longs beyond 2^53 are a validation error, not silently rounded", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(local.encode({ ...valid, id: 2 ** 53 + 2 }, { schema: Widget, topic }))
      expect(error.reason).toBe("Validation")
      expect(error.issues?.map((i) => i.path.join("."))).toEqual(["id"])
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
      const coerced = yield* local.coerce({
        day: "2024-01-02",
        counts: { a: "3" },
        lines: [{ qty: "2", ok: 1 }],
        at: "2024-01-02T00:00:00.000Z"
      }, Event)
      expect(coerced).toEqual({
        day: 19724,
        counts: { a: 3 },
        lines: [{ qty: 2, ok: true }],
        at: Date.UTC(2024, 0, 2) * 1000
      })
      yield* local.validate(coerced, Event)
      const key = { _tag: "Field" as const, field: "id", valueSchema: Widget }
      const bytes = yield* local.encodeKey("7", { key, topic })
      expect(yield* local.decodeKey(bytes, { key, topic })).toBe(7)
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
        // alternating writer ids with one handle: each message is read with its own writer schema
        const current = yield* (yield* backend).encode(valid, { schema: Widget, topic: "readers-current" })
        for (const [bytes, expected] of [[current, valid], [producerSide, { id: 3, name: "old" }], [current, valid]]) {
          expect(yield* (yield* backend).decode(bytes as Uint8Array, { schema: Widget, topic: "readers" }))
            .toMatchObject(expected as object)
        }
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

  it.scopedLive("an unreachable registry is a retriable typed error, after one attempt per retry", () =>
    Effect.gen(function*() {
      // a "registry" that drops every connection: each attempt is one connection
      const attempts = yield* listen(net.createServer((socket) => socket.destroy()))
      const b = AvroBackend.makeSchemaRegistry({
        url: `http://127.0.0.1:${attempts.port}`,
        schemaDirs: [schemaDir],
        retries: 3,
        retrySchedule: Schedule.exponential("5 millis")
      })
      const error = yield* Effect.flip(b.encode(valid, { schema: Widget, topic }))
      expect(error).toMatchObject({ reason: "Registry", retriable: true })
      expect(error.message).toContain("unreachable")
      expect(attempts.count()).toBe(4)
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
      const b = AvroBackend.makeSchemaRegistry({
        url: `http://127.0.0.1:${server.port}`,
        schemaDirs: [schemaDir],
        auth: { username: "app", password: Redacted.make("s3cret") },
        retrySchedule: Schedule.exponential("5 millis")
      })
      const bytes = yield* b.encode(valid, { schema: Widget, topic: "busy" })
      expect([...bytes.subarray(0, 5)]).toEqual([0, 0, 0, 0, 42])
      expect(seen.map((r) => r.url)).toEqual(Array(3).fill("/subjects/busy-value/versions"))
      expect(seen[0].authorization).toBe(`Basic ${Buffer.from("app:s3cret").toString("base64")}`)
      // the id is cached: a second message makes no call
      yield* b.encode(valid, { schema: Widget, topic: "busy" })
      expect(seen).toHaveLength(3)
    }))

  it.effect("layerSchemaRegistryConfig reads the URL, schema directories and register flag from Config", () =>
    Effect.gen(function*() {
      const backend = yield* SchemaBackend.SchemaBackend
      expect(backend.name).toBe("avroSchemaRegistry")
      // register: false and an unreachable URL: encoding tries a lookup, fails typed, never crashes
      const error = yield* Effect.flip(backend.encode(valid, { schema: Widget, topic }))
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
})

const listen = (server: net.Server) =>
  Effect.acquireRelease(
    Effect.async<{ readonly port: number; readonly count: () => number }>((resume) => {
      let count = 0
      server.on("connection", () => count++)
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
      })
  )
