import { SchemaRegistry } from "@deimos/broker"
import { describe, expect, it } from "@effect/vitest"
import { SchemaRegistry as Client, SchemaType } from "@kafkajs/confluent-schema-registry"
import * as Effect from "effect/Effect"
import * as Compat from "../src/registry/compat.js"

const record = (fields: ReadonlyArray<object>, name = "User") =>
  JSON.stringify({ type: "record", name, namespace: "test", fields })
const v1 = record([{ name: "id", type: "int" }])
const withDefault = record([{ name: "id", type: "int" }, { name: "email", type: "string", default: "" }])
const withoutDefault = record([{ name: "id", type: "int" }, { name: "email", type: "string" }])

const call = (method: string, path: string, body?: unknown) =>
  Effect.flatMap(SchemaRegistry.SchemaRegistry, ({ url }) =>
    Effect.promise(async () => {
      const response = await fetch(url + path, {
        method,
        headers: { "content-type": "application/vnd.schemaregistry.v1+json" },
        ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
      })
      return { status: response.status, body: await response.json() as Record<string, unknown> & Array<unknown> }
    }))

describe("Schema Registry", () => {
  it.layer(SchemaRegistry.layer({ port: 0 }))((it) => {
    it.effect("registers: the same schema keeps its global id and version; a new one gets the next version", () =>
      Effect.gen(function*() {
        const first = yield* call("POST", "/subjects/users-value/versions", { schema: v1 })
        const again = yield* call("POST", "/subjects/users-value/versions", { schema: v1 })
        expect(again.body.id).toBe(first.body.id)
        const second = yield* call("POST", "/subjects/users-value/versions", { schema: withDefault })
        expect(second.body.id).not.toBe(first.body.id)
        expect((yield* call("GET", "/subjects/users-value/versions")).body).toEqual([1, 2])
        // the same schema under another subject keeps its global id
        const other = yield* call("POST", "/subjects/other-value/versions", { schema: v1 })
        expect(other.body.id).toBe(first.body.id)
        expect((yield* call("GET", "/subjects")).body).toEqual(expect.arrayContaining(["other-value", "users-value"]))
      }))

    it.effect("reads schemas by id, subject versions, latest, and looks a schema up", () =>
      Effect.gen(function*() {
        const { body } = yield* call("POST", "/subjects/read-value/versions", { schema: v1 })
        const byId = yield* call("GET", `/schemas/ids/${body.id}`)
        expect(JSON.parse(byId.body.schema as string)).toMatchObject({ type: "record", name: "test.User" })
        const latest = yield* call("GET", "/subjects/read-value/versions/latest")
        expect(latest.body).toMatchObject({ subject: "read-value", version: 1, id: body.id })
        expect((yield* call("GET", "/subjects/read-value/versions/1")).body.id).toBe(body.id)
        const lookup = yield* call("POST", "/subjects/read-value", { schema: v1 })
        expect(lookup.body).toMatchObject({ subject: "read-value", version: 1, id: body.id })
        const missing = yield* call("POST", "/subjects/read-value", { schema: withDefault })
        expect(missing).toEqual({ status: 404, body: { error_code: 40403, message: "Schema not found" } })
      }))

    it.effect("answers unknown subjects, versions and ids with Confluent errors", () =>
      Effect.gen(function*() {
        expect((yield* call("GET", "/subjects/nope/versions")).body.error_code).toBe(40401)
        yield* call("POST", "/subjects/known-value/versions", { schema: v1 })
        const version = yield* call("GET", "/subjects/known-value/versions/7")
        expect(version).toMatchObject({ status: 404, body: { error_code: 40402 } })
        expect((yield* call("GET", "/subjects/known-value/versions/abc")).body.error_code).toBe(42202)
        expect((yield* call("GET", "/schemas/ids/9999")).body.error_code).toBe(40403)
      }))

    it.effect("rejects invalid JSON bodies and invalid Avro schemas", () =>
      Effect.gen(function*() {
        expect((yield* call("POST", "/subjects/bad-value/versions", "{not json")).status).toBe(400)
        const invalid = yield* call("POST", "/subjects/bad-value/versions", { schema: "{\"type\":\"recrod\"}" })
        expect(invalid).toMatchObject({ status: 422, body: { error_code: 42201 } })
        expect((yield* call("POST", "/subjects/bad-value/versions", { nope: 1 })).body.error_code).toBe(42201)
      }))

    it.effect("config: global get/put, per subject 404 until set, invalid level rejected", () =>
      Effect.gen(function*() {
        expect((yield* call("GET", "/config")).body).toEqual({ compatibilityLevel: "BACKWARD" })
        expect((yield* call("GET", "/config/cfg-value")).body.error_code).toBe(40408)
        expect((yield* call("PUT", "/config/cfg-value", { compatibility: "FULL" })).body).toEqual({
          compatibility: "FULL"
        })
        expect((yield* call("GET", "/config/cfg-value")).body).toEqual({ compatibilityLevel: "FULL" })
        expect((yield* call("PUT", "/config/cfg-value", { compatibility: "SIDEWAYS" })).body.error_code).toBe(42203)
      }))

    it.effect("BACKWARD rejects a field without default with 409 naming the subject; compatibility endpoint agrees", () =>
      Effect.gen(function*() {
        yield* call("POST", "/subjects/compat-value/versions", { schema: v1 })
        const check = yield* call("POST", "/compatibility/subjects/compat-value/versions/latest", {
          schema: withoutDefault
        })
        expect(check.body.is_compatible).toBe(false)
        const ok = yield* call("POST", "/compatibility/subjects/compat-value/versions/latest", { schema: withDefault })
        expect(ok.body.is_compatible).toBe(true)
        const rejected = yield* call("POST", "/subjects/compat-value/versions", { schema: withoutDefault })
        expect(rejected.status).toBe(409)
        expect(rejected.body.message).toContain("compat-value")
        yield* call("PUT", "/config/compat-value", { compatibility: "NONE" })
        expect((yield* call("POST", "/subjects/compat-value/versions", { schema: withoutDefault })).status).toBe(200)
      }))

    it.effect("@kafkajs/confluent-schema-registry registers, encodes and decodes through it", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const decoded = yield* Effect.promise(async () => {
          const client = new Client({ host: url })
          const { id } = await client.register({ type: SchemaType.AVRO, schema: v1 }, { subject: "client-value" })
          const bytes = await client.encode(id, { id: 42 })
          expect(bytes[0]).toBe(0)
          expect(bytes.readInt32BE(1)).toBe(id)
          return client.decode(bytes)
        })
        expect(decoded).toEqual({ id: 42 })
      }))

    it.effect("DELETE /subjects removes a subject", () =>
      Effect.gen(function*() {
        yield* call("POST", "/subjects/gone-value/versions", { schema: v1 })
        expect((yield* call("DELETE", "/subjects/gone-value")).body).toEqual([1])
        expect((yield* call("GET", "/subjects/gone-value/versions")).status).toBe(404)
      }))
  })
})

describe("Avro compatibility rules", () => {
  const parse = (s: string) => {
    const t = Compat.parse(s)
    if (typeof t === "string") throw new Error(t)
    return t
  }
  const enumOf = (symbols: ReadonlyArray<string>) => parse(JSON.stringify({ type: "enum", name: "E", symbols }))

  it("BACKWARD: adding a field needs a default; removing a field is fine", () => {
    expect(Compat.check("BACKWARD", parse(withDefault), [parse(v1)])).toEqual([])
    expect(Compat.check("BACKWARD", parse(withoutDefault), [parse(v1)])).toHaveLength(1)
    expect(Compat.check("BACKWARD", parse(v1), [parse(withoutDefault)])).toEqual([])
  })

  it("FORWARD: removing a field without default breaks old readers", () => {
    expect(Compat.check("FORWARD", parse(v1), [parse(withoutDefault)])).toHaveLength(1)
    expect(Compat.check("FORWARD", parse(withoutDefault), [parse(v1)])).toEqual([])
  })

  it("FULL needs both; NONE accepts anything", () => {
    expect(Compat.check("FULL", parse(withDefault), [parse(v1)])).toEqual([])
    expect(Compat.check("FULL", parse(withoutDefault), [parse(v1)])).toHaveLength(1)
    expect(Compat.check("NONE", parse(record([{ name: "id", type: "string" }])), [parse(v1)])).toEqual([])
  })

  it("type promotion int → long is backward compatible, long → int is not", () => {
    const asLong = parse(record([{ name: "id", type: "long" }]))
    expect(Compat.check("BACKWARD", asLong, [parse(v1)])).toEqual([])
    expect(Compat.check("BACKWARD", parse(v1), [asLong])).toHaveLength(1)
  })

  it("enums: adding a symbol is backward compatible, removing one is not", () => {
    expect(Compat.check("BACKWARD", enumOf(["A", "B", "C"]), [enumOf(["A", "B"])])).toEqual([])
    expect(Compat.check("BACKWARD", enumOf(["A"]), [enumOf(["A", "B"])])).toHaveLength(1)
  })

  it("transitive levels check every earlier version", () => {
    const v2 = parse(record([{ name: "id", type: "int" }, { name: "x", type: "int", default: 0 }]))
    const v3 = parse(record([{ name: "x", type: "int", default: 0 }, { name: "id", type: "int", default: 0 }]))
    expect(Compat.check("FORWARD", v3, [parse(v1), v2])).toEqual([])
    expect(Compat.check("FORWARD_TRANSITIVE", v3, [parse(withoutDefault), v2])).toHaveLength(1)
  })
})
