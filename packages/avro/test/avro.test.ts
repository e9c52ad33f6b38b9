import { AvroBackend } from "@deimos/avro"
import { SchemaRegistry } from "@deimos/broker"
import { DeimosConfig, Producer, ProducerBackend, SchemaBackend, SchemaRef, SentMessages } from "@deimos/core"
import { describe, expect, it } from "@effect/vitest"
import { SchemaRegistry as Client, SchemaType } from "@kafkajs/confluent-schema-registry"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { schemaDir, valid, Widget } from "./fixtures.js"
import { Widget as GeneratedWidget } from "./generated/index.js"
import * as Rich from "./generated/rich/index.js"

const local = Effect.runSync(AvroBackend.makeLocal({ schemaDirs: [schemaDir] }))
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

describe("coercion knows the Avro logical types for every handle (Deimos #97)", () => {
  const at = new Date("2024-05-06T07:08:09.123Z")

  it.effect("a generated handle: Date to micros in a timestamp-micros field, ISO strings keep their micro digits", () =>
    Effect.gen(function*() {
      const coerced = (yield* local.coerce({
        id: "7",
        name: "w",
        updated_at: "2024-05-06T07:08:09.123Z",
        seen_at_micros: at
      }, GeneratedWidget)) as GeneratedWidget
      // the payload side of DateFromNumber is a Date; the micros field is a plain Int: epoch micros, not millis
      expect(coerced.updated_at).toEqual(at)
      expect(coerced.seen_at_micros).toBe(at.getTime() * 1000)
      const iso = (yield* local.coerce(
        { ...coerced, seen_at_micros: "2024-05-06T07:08:09.123456Z" },
        GeneratedWidget
      )) as GeneratedWidget
      expect(iso.seen_at_micros).toBe(at.getTime() * 1000 + 456)
      const decoded = (yield* local.decode(yield* local.encode(iso, { schema: GeneratedWidget, topic }), {
        schema: GeneratedWidget,
        topic
      })) as GeneratedWidget
      expect(decoded.seen_at_micros).toBe(1_714_979_289_123_456)
      // a handle without an Effect Schema: the same digits, through the Avro walk
      const plain =
        (yield* local.coerce({ ...valid, seen_at_micros: "2024-05-06T07:08:09.123456+00:00" }, Widget)) as Widget
      expect(plain.seen_at_micros).toBe(1_714_979_289_123_456)
    }))

  it.effect("dates become days in date fields, map values are coerced, timestamps in maps keep micros", () =>
    Effect.gen(function*() {
      const coerced = (yield* local.coerce({
        id: 1,
        day: new Date("2024-01-02T23:00:00Z"),
        at_micros: "2024-01-02T00:00:00.000001Z",
        created: "2024-01-02T00:00:00.5Z",
        counts: { a: "3", b: 4 },
        stamps: { b: at, c: "2024-01-02T00:00:00.000002Z" },
        payment: { "com.shop.Card": { number: 4111, expires: "2024-01-03" } },
        lines: [{ sku: 1, qty: "2" }]
      }, Rich.Order)) as Record<string, unknown>
      expect(coerced).toMatchObject({
        day: 19724,
        at_micros: Date.UTC(2024, 0, 2) * 1000 + 1,
        created: new Date(Date.UTC(2024, 0, 2) + 500),
        counts: { a: 3, b: 4 },
        stamps: { b: at.getTime() * 1000, c: Date.UTC(2024, 0, 2) * 1000 + 2 },
        payment: { "com.shop.Card": { number: "4111", expires: 19725 } },
        lines: [{ sku: "1", qty: 2 }]
      })
      expect((yield* local.coerce({ day: "2024-01-02" }, Rich.Order)) as object).toEqual({ day: 19724 })
    }))

  it.effect("through a Producer: a Date in a generated timestamp-micros field is sent as exact micros", () =>
    Effect.gen(function*() {
      const widgets = Producer.make({ topic: "widgets", schema: GeneratedWidget, keyConfig: { field: "id" } })
      yield* widgets.publish({ id: 1, name: "w", updated_at: at, seen_at_micros: at as unknown as number })
      const [message] = yield* Effect.flatMap(SentMessages.SentMessages, (sent) => sent.all)
      const decoded = (yield* local.decode(message.encodedPayload!, { schema: Widget, topic })) as Widget
      expect(decoded.seen_at_micros).toBe(at.getTime() * 1000)
      expect(decoded.updated_at).toBe(at.getTime())
    }).pipe(Effect.provide(Layer.merge(ProducerBackend.layerTest, Layer.orDie(AvroBackend.layerLocal())))))
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
        yield* b.validate(blob, Blob)
        const decoded = yield* b.decode(yield* b.encode(blob, { schema: Blob, topic: "blobs" }), {
          schema: Blob,
          topic: "blobs"
        })
        expect(plainBytes(decoded)).toEqual(plainBytes(blob))
        expect((decoded as { data: unknown }).data).toBeInstanceOf(Uint8Array)
      }
      // the payload is not modified
      expect(Buffer.isBuffer(blob.data)).toBe(false)
      const wrong = yield* Effect.flip(
        local.encode({ ...blob, tag: new Uint8Array([1, 2, 3]) }, { schema: Blob, topic })
      )
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
      expect(yield* b.decode(yield* b.encode(value, { schema: A, topic }), { schema: A, topic })).toEqual(value)
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

    it.scoped("decoding only looks schemas up by id: it never registers (Deimos #159)", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const { first, id } = yield* olderWidget(url, "readers-value")
        // every request of the consumer's backend goes through a proxy that records it
        const seen = yield* proxy(url)
        const consumerSide = yield* AvroBackend.makeSchemaRegistry({ url: seen.url, schemaDirs: [schemaDir] })
        // a consumer on the newer Widget schema reads the older message (reader/writer resolution, defaults filled),
        // on a topic whose subject does not exist: a backend that registered or looked the subject up would show it
        const decoded = yield* consumerSide.decode(first, { schema: Widget, topic: "no-such-subject" })
        expect(decoded).toMatchObject({ id: 3, name: "old", price: null, tags: [], status: "ACTIVE" })
        expect(seen.requests).toEqual([`GET /schemas/ids/${id}`])
        const subjects = yield* Effect.promise(() =>
          fetch(`${url}/subjects`).then((r) => r.json() as Promise<Array<string>>)
        )
        expect(subjects).not.toContain("no-such-subject-value")
        // alternating writer ids with one handle: each message is read with its own writer schema
        const b = yield* backend
        const current = yield* b.encode(valid, { schema: Widget, topic: "readers-current" })
        for (const [bytes, expected] of [[current, valid], [first, { id: 3, name: "old" }], [current, valid]]) {
          expect(yield* b.decode(bytes as Uint8Array, { schema: Widget, topic: "readers" }))
            .toMatchObject(expected as object)
        }
      }))

    it.scoped("writer schemas are cached by id: a second message of that id makes no request", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const { first, id, second } = yield* olderWidget(url, "cached-value")
        const seen = yield* proxy(url)
        const b = yield* AvroBackend.makeSchemaRegistry({ url: seen.url, schemaDirs: [schemaDir] })
        expect(yield* b.decode(first, { schema: Widget, topic: "cached" })).toMatchObject({ id: 3 })
        expect(yield* b.decode(second, { schema: Widget, topic: "cached" })).toMatchObject({ id: 4 })
        // another handle (no local schema: read with the writer's) still uses the cached writer schema
        const untyped = SchemaRef.make<unknown>({ name: "com.example.Unknown" })
        expect(yield* b.decode(second, { schema: untyped, topic: "cached" })).toMatchObject({ id: 4, name: "older" })
        expect(seen.requests).toEqual([`GET /schemas/ids/${id}`])
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
        const error = yield* Effect.flip((yield* backend).decode(bytes, { schema: Widget, topic: "incompatible" }))
        expect(error.reason).toBe("Decode")
        expect(error.message).toContain("cannot be read as com.example.Widget")
      }))

    it.effect("random bytes are typed decode errors, never a crash", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const good = yield* b.encode(valid, { schema: Widget, topic })
        // a seeded generator: magic byte 0 and a known schema id half of the time, so the body is read
        let seed = 42
        const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
        let failures = 0
        for (let i = 0; i < 300; i++) {
          const bytes = new Uint8Array(Math.floor(next() * 48))
          for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(next() * 256)
          if (i % 2 === 0 && bytes.length >= 5) bytes.set(good.subarray(0, 5))
          if (i % 10 === 1 && bytes.length >= 5) bytes.set([0, 0, 0, 0x7f, 0x7f])
          const exit = yield* Effect.exit(b.decode(bytes, { schema: Widget, topic }))
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
        yield* b.encode(valid, { schema: Widget, topic: "named" })
        yield* b.encodeKey(1, { key: { _tag: "Field", field: "id", valueSchema: Widget }, topic: "named" })
        const subjects = yield* Effect.promise(() => fetch(`${url}/subjects`).then((r) => r.json()))
        expect(subjects).toEqual(expect.arrayContaining(["values.named", "keys.named"]))
        expect(subjects).not.toContain("named-value")
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
        const subjects = yield* Effect.promise(() => fetch(`${url}/subjects`).then((r) => r.json()))
        expect(subjects).toEqual(expect.arrayContaining(["staging.prefixed-value", "staging.prefixed-key"]))
        expect(subjects).not.toContain("prefixed-value")
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
        const lookupOnly = yield* AvroBackend.makeSchemaRegistry({ url, schemaDirs: [schemaDir], register: false })
        const error = yield* Effect.flip(lookupOnly.encode(valid, { schema: Widget, topic: "never-registered" }))
        expect(error.message).toContain("40401")
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
      const b = yield* AvroBackend.makeSchemaRegistry({
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
