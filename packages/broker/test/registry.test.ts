import { SchemaRegistry } from "@deimos/broker"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe, expect, it } from "@effect/vitest"
import { SchemaRegistry as Client, SchemaType } from "@kafkajs/confluent-schema-registry"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

const record = (fields: ReadonlyArray<object>, name = "User") =>
  JSON.stringify({ type: "record", name, namespace: "test", fields })
const v1 = record([{ name: "id", type: "int" }])
const withDefault = record([{ name: "id", type: "int" }, { name: "email", type: "string", default: "" }])
const withoutDefault = record([{ name: "id", type: "int" }, { name: "email", type: "string" }])
const asLong = record([{ name: "id", type: "long" }])
const colors = (symbols: ReadonlyArray<string>) => JSON.stringify({ type: "enum", name: "Color", symbols })

const vnd = "application/vnd.schemaregistry.v1+json"

/** One request to the registry under test: status, content type and parsed body. */
const call = (
  method: "GET" | "POST" | "PUT" | "DELETE",
  path: string,
  body?: unknown,
  contentType = vnd
) =>
  Effect.gen(function*() {
    const { url } = yield* SchemaRegistry.SchemaRegistry
    const client = yield* HttpClient.HttpClient
    const request = HttpClientRequest.make(method)(url + path).pipe(
      HttpClientRequest.setHeader("accept", vnd),
      (r) =>
        body === undefined ? r : HttpClientRequest.bodyText(
          r,
          typeof body === "string" ? body : JSON.stringify(body),
          contentType
        )
    )
    const response = yield* client.execute(request)
    const text = yield* response.text
    return {
      status: response.status,
      contentType: response.headers["content-type"],
      body: JSON.parse(text) as any
    }
  })

const register = (subject: string, schema: string) =>
  call("POST", `/subjects/${encodeURIComponent(subject)}/versions`, { schema })

/** Runs a promise-returning client call; a rejection fails the test with its error. */
const tryPromise = <A>(f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: (error) => error })

const registry = Layer.mergeAll(SchemaRegistry.layer({ port: 0 }), FetchHttpClient.layer)

describe("Schema Registry over HTTP", () => {
  it.layer(registry)((it) => {
    it.effect("registers: the same schema keeps its global id and adds no version; a new one gets the next", () =>
      Effect.gen(function*() {
        const first = yield* register("users-value", v1)
        expect(first).toMatchObject({ status: 200, contentType: vnd, body: { id: expect.any(Number) } })
        const again = yield* register("users-value", v1)
        expect(again.body).toEqual({ id: first.body.id })
        // formatting and key order do not make a new schema
        const reformatted = JSON.stringify(JSON.parse(v1), null, 4)
        expect((yield* register("users-value", reformatted)).body).toEqual({ id: first.body.id })
        expect((yield* call("GET", "/subjects/users-value/versions")).body).toEqual([1])
        const second = yield* register("users-value", withDefault)
        expect(second.body.id).not.toBe(first.body.id)
        expect((yield* call("GET", "/subjects/users-value/versions")).body).toEqual([1, 2])
        // the same schema under another subject keeps its global id
        expect((yield* register("accounts-value", v1)).body).toEqual({ id: first.body.id })
        const subjects = (yield* call("GET", "/subjects")).body
        expect(subjects).toEqual(expect.arrayContaining(["accounts-value", "users-value"]))
        expect(subjects).toEqual([...subjects].sort())
        expect((yield* call("GET", `/schemas/ids/${first.body.id}/versions`)).body).toEqual(
          expect.arrayContaining([{ subject: "users-value", version: 1 }, { subject: "accounts-value", version: 1 }])
        )
      }))

    it.effect("reads schemas by id, subject versions by number and latest, and looks a schema up", () =>
      Effect.gen(function*() {
        const { body } = yield* register("read-value", v1)
        const byId = yield* call("GET", `/schemas/ids/${body.id}`)
        expect(byId.status).toBe(200)
        expect(JSON.parse(byId.body.schema)).toEqual({
          type: "record",
          name: "test.User",
          fields: [{ name: "id", type: "int" }]
        })
        yield* register("read-value", withDefault)
        const latest = yield* call("GET", "/subjects/read-value/versions/latest")
        expect(latest.body).toMatchObject({
          subject: "read-value",
          version: 2,
          schema: expect.stringContaining("email")
        })
        const one = yield* call("GET", "/subjects/read-value/versions/1")
        expect(one.body).toEqual({ subject: "read-value", version: 1, id: body.id, schema: byId.body.schema })
        expect((yield* call("GET", "/subjects/read-value/versions/1/schema")).body).toEqual(
          JSON.parse(byId.body.schema)
        )
        const lookup = yield* call("POST", "/subjects/read-value", { schema: v1 })
        expect(lookup.body).toEqual({ subject: "read-value", version: 1, id: body.id, schema: byId.body.schema })
        expect((yield* call("GET", "/schemas/types")).body).toEqual(["AVRO"])
      }))

    it.effect("subjects with reserved characters round-trip through the URL", () =>
      Effect.gen(function*() {
        const subject = "team a/orders-value"
        yield* register(subject, v1)
        expect((yield* call("GET", "/subjects")).body).toContain(subject)
        const latest = yield* call("GET", `/subjects/${encodeURIComponent(subject)}/versions/latest`)
        expect(latest.body.subject).toBe(subject)
      }))

    it.effect("answers unknown subjects, versions and ids, and bad versions, with Confluent errors", () =>
      Effect.gen(function*() {
        expect(yield* call("GET", "/subjects/nope-value/versions")).toMatchObject({
          status: 404,
          contentType: vnd,
          body: { error_code: 40401, message: "Subject 'nope-value' not found." }
        })
        expect(yield* call("GET", "/subjects/nope-value/versions/latest")).toMatchObject({
          status: 404,
          body: { error_code: 40401 }
        })
        yield* register("known-value", v1)
        expect(yield* call("GET", "/subjects/known-value/versions/7")).toMatchObject({
          status: 404,
          body: { error_code: 40402 }
        })
        for (const bad of ["abc", "0", "1.5", "99999999999"]) {
          expect(yield* call("GET", `/subjects/known-value/versions/${bad}`)).toMatchObject({
            status: 422,
            body: { error_code: 42202, message: expect.stringContaining(bad) }
          })
        }
        expect(yield* call("GET", "/schemas/ids/999999")).toEqual({
          status: 404,
          contentType: vnd,
          body: { error_code: 40403, message: "Schema 999999 not found" }
        })
        expect((yield* call("GET", "/schemas/ids/abc")).body.error_code).toBe(40403)
        expect(yield* call("POST", "/subjects/known-value", { schema: withDefault })).toEqual({
          status: 404,
          contentType: vnd,
          body: { error_code: 40403, message: "Schema not found" }
        })
        expect((yield* call("POST", "/subjects/nope-value", { schema: v1 })).body.error_code).toBe(40401)
        expect(yield* call("GET", "/no/such/path")).toMatchObject({ status: 404, body: { error_code: 404 } })
      }))

    it.effect("rejects malformed JSON (400), invalid Avro (42201), other schema types and content types", () =>
      Effect.gen(function*() {
        expect(yield* call("POST", "/subjects/bad-value/versions", "{not json")).toMatchObject({
          status: 400,
          body: { error_code: 400, message: expect.stringContaining("JSON") }
        })
        expect(yield* call("PUT", "/config", "{not json")).toMatchObject({ status: 400, body: { error_code: 400 } })
        expect(yield* register("bad-value", "{\"type\":\"recrod\",\"name\":\"X\",\"fields\":[]}")).toMatchObject({
          status: 422,
          body: { error_code: 42201, message: expect.stringContaining("Invalid schema") }
        })
        expect(yield* register("bad-value", "not json at all")).toMatchObject({
          status: 422,
          body: { error_code: 42201 }
        })
        expect((yield* call("POST", "/subjects/bad-value/versions", { nope: 1 })).body.error_code).toBe(42201)
        expect((yield* call("POST", "/subjects/bad-value/versions", { schema: v1, schemaType: "PROTOBUF" })).body)
          .toMatchObject({ error_code: 42201, message: expect.stringContaining("PROTOBUF") })
        expect(
          (yield* call("POST", "/subjects/bad-value", { schema: "{\"type\":\"nope\"}" })).body.error_code
        ).toBe(42201)
        expect((yield* call("POST", "/subjects/bad-value/versions", { schema: v1 }, "text/plain")).status).toBe(415)
        // nothing was registered by any of these
        expect((yield* call("GET", "/subjects/bad-value/versions")).status).toBe(404)
      }))

    it.effect("accepts application/json as well as the Confluent content type", () =>
      Effect.gen(function*() {
        const plain = yield* call("POST", "/subjects/json-value/versions", { schema: v1 }, "application/json")
        expect(plain).toMatchObject({ status: 200, body: { id: expect.any(Number) } })
      }))

    it.effect("config: global get/put, per subject 40408 until set, delete, invalid level 42203", () =>
      Effect.gen(function*() {
        expect(yield* call("GET", "/config")).toEqual({
          status: 200,
          contentType: vnd,
          body: { compatibilityLevel: "BACKWARD" }
        })
        expect(yield* call("GET", "/config/cfg-value")).toMatchObject({
          status: 404,
          body: { error_code: 40408, message: expect.stringContaining("cfg-value") }
        })
        expect((yield* call("GET", "/config/cfg-value?defaultToGlobal=true")).body).toEqual({
          compatibilityLevel: "BACKWARD"
        })
        expect((yield* call("PUT", "/config/cfg-value", { compatibility: "FULL" })).body).toEqual({
          compatibility: "FULL"
        })
        expect((yield* call("GET", "/config/cfg-value")).body).toEqual({ compatibilityLevel: "FULL" })
        expect(yield* call("PUT", "/config/cfg-value", { compatibility: "SIDEWAYS" })).toMatchObject({
          status: 422,
          body: { error_code: 42203 }
        })
        expect((yield* call("PUT", "/config/cfg-value", {})).body.error_code).toBe(42203)
        expect((yield* call("DELETE", "/config/cfg-value")).body).toEqual({ compatibilityLevel: "FULL" })
        expect((yield* call("GET", "/config/cfg-value")).status).toBe(404)
      }))

    it.effect("register enforces BACKWARD: 409 naming the subject; the compatibility endpoint agrees", () =>
      Effect.gen(function*() {
        yield* register("compat-value", v1)
        const check = (schema: string, query = "") =>
          call("POST", `/compatibility/subjects/compat-value/versions/latest${query}`, { schema })
        expect((yield* check(withoutDefault)).body).toEqual({ is_compatible: false })
        expect((yield* check(withoutDefault, "?verbose=true")).body).toEqual({
          is_compatible: false,
          messages: [expect.stringContaining("READER_FIELD_MISSING_DEFAULT_VALUE at /fields/email")]
        })
        expect((yield* check(withDefault)).body).toEqual({ is_compatible: true })
        const rejected = yield* register("compat-value", withoutDefault)
        expect(rejected).toMatchObject({
          status: 409,
          body: { error_code: 409, message: expect.stringContaining("\"compat-value\"") }
        })
        expect((yield* call("GET", "/subjects/compat-value/versions")).body).toEqual([1])
        yield* call("PUT", "/config/compat-value", { compatibility: "NONE" })
        expect((yield* register("compat-value", withoutDefault)).status).toBe(200)
        expect((yield* call("GET", "/subjects/compat-value/versions")).body).toEqual([1, 2])
      }))

    it.effect("FORWARD, FULL and promotion levels decide registration per subject", () =>
      Effect.gen(function*() {
        const subject = (name: string, level: string, first: string) =>
          Effect.gen(function*() {
            yield* call("PUT", `/config/${name}`, { compatibility: level })
            yield* register(name, first)
          })
        // int → long: new readers read old data (BACKWARD), old readers cannot read new data (FORWARD)
        yield* subject("promote-back", "BACKWARD", v1)
        expect((yield* register("promote-back", asLong)).status).toBe(200)
        yield* subject("promote-fwd", "FORWARD", v1)
        expect((yield* register("promote-fwd", asLong)).status).toBe(409)
        // removing a field without default breaks FORWARD
        yield* subject("remove-fwd", "FORWARD", withoutDefault)
        expect((yield* register("remove-fwd", v1)).status).toBe(409)
        // FULL: a field with a default is fine both ways, without one it is not
        yield* subject("full", "FULL", v1)
        expect((yield* register("full", withoutDefault)).status).toBe(409)
        expect((yield* register("full", withDefault)).status).toBe(200)
        // enums: adding a symbol is BACKWARD, removing one is not
        yield* subject("enum-value", "BACKWARD", colors(["RED", "GREEN"]))
        expect((yield* register("enum-value", colors(["RED", "GREEN", "BLUE"]))).status).toBe(200)
        expect((yield* register("enum-value", colors(["RED", "GREEN"]))).status).toBe(200)
        expect((yield* register("enum-value", colors(["RED"]))).status).toBe(409)
        // transitive: compared with every earlier version, not only the latest
        yield* subject("trans-value", "BACKWARD_TRANSITIVE", v1)
        yield* register("trans-value", withDefault)
        expect((yield* register("trans-value", withoutDefault)).status).toBe(409)
        const all = yield* call("POST", "/compatibility/subjects/trans-value/versions", { schema: withoutDefault })
        expect(all.body).toEqual({ is_compatible: false })
        const latestOnly = yield* call("POST", "/compatibility/subjects/trans-value/versions/latest", {
          schema: withoutDefault
        })
        expect(latestOnly.body).toEqual({ is_compatible: true })
      }))

    it.effect("compatibility: a new subject is compatible; unknown versions and bad input are errors", () =>
      Effect.gen(function*() {
        const path = (s: string, v: string) => `/compatibility/subjects/${s}/versions/${v}`
        expect((yield* call("POST", path("fresh-value", "latest"), { schema: v1 })).body).toEqual({
          is_compatible: true
        })
        expect((yield* call("POST", path("fresh-value", "1"), { schema: v1 })).body.error_code).toBe(40401)
        yield* register("cv-value", v1)
        expect((yield* call("POST", path("cv-value", "5"), { schema: v1 })).body.error_code).toBe(40402)
        expect((yield* call("POST", path("cv-value", "x"), { schema: v1 })).body.error_code).toBe(42202)
        expect((yield* call("POST", path("cv-value", "latest"), { schema: "{" })).body.error_code).toBe(42201)
      }))

    it.effect("DELETE removes a version or a subject; ids stay", () =>
      Effect.gen(function*() {
        const { body } = yield* register("gone-value", v1)
        yield* register("gone-value", withDefault)
        expect((yield* call("DELETE", "/subjects/gone-value/versions/2")).body).toBe(2)
        expect((yield* call("GET", "/subjects/gone-value/versions")).body).toEqual([1])
        expect((yield* call("DELETE", "/subjects/gone-value")).body).toEqual([1])
        expect((yield* call("GET", "/subjects/gone-value/versions")).body.error_code).toBe(40401)
        expect((yield* call("GET", "/subjects")).body).not.toContain("gone-value")
        expect((yield* call("DELETE", "/subjects/gone-value")).body.error_code).toBe(40401)
        expect((yield* call("GET", `/schemas/ids/${body.id}`)).status).toBe(200)
      }))

    it.effect("@kafkajs/confluent-schema-registry registers, encodes and decodes through it", () =>
      Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.SchemaRegistry
        const client = new Client({ host: url })
        const schema = record([
          { name: "id", type: "int" },
          { name: "at", type: { type: "long", logicalType: "timestamp-millis" } },
          { name: "tags", type: { type: "array", items: "string" } }
        ], "Event")
        const { id } = yield* tryPromise(() =>
          client.register({ type: SchemaType.AVRO, schema }, { subject: "client-value" })
        )
        const again = yield* tryPromise(() =>
          client.register({ type: SchemaType.AVRO, schema }, { subject: "client-value" })
        )
        expect(again.id).toBe(id)
        const bytes = yield* tryPromise(() => client.encode(id, { id: 42, at: 1_700_000_000_000, tags: ["a"] }))
        expect(bytes[0]).toBe(0)
        expect(bytes.readInt32BE(1)).toBe(id)
        // a fresh client knows nothing cached: it fetches the schema by id to decode
        const fresh = new Client({ host: url })
        expect(yield* tryPromise(() => fresh.decode(bytes))).toEqual({ id: 42, at: 1_700_000_000_000, tags: ["a"] })
        expect(yield* tryPromise(() => fresh.getLatestSchemaId("client-value"))).toBe(id)
        expect(yield* tryPromise(() => fresh.getRegistryId("client-value", 1))).toBe(id)
        expect(yield* tryPromise(() => fresh.getRegistryIdBySchema("client-value", { type: SchemaType.AVRO, schema })))
          .toBe(id)
        // the logical type survives the round trip through the registry
        const stored = yield* call("GET", `/schemas/ids/${id}`)
        expect(JSON.parse(stored.body.schema).fields[1].type).toEqual({ type: "long", logicalType: "timestamp-millis" })
        // an incompatible schema surfaces as the client's error, with the subject
        const error = yield* Effect.flip(
          tryPromise(() =>
            client.register({ type: SchemaType.AVRO, schema: record([{ name: "other", type: "string" }], "Event") }, {
              subject: "client-value"
            })
          )
        )
        expect(String(error)).toContain("client-value")
      }))
  })
})
