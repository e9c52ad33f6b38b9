import { SchemaRegistry } from "@deimos/broker"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

const vnd = "application/vnd.schemaregistry.v1+json"

/** One request to the registry under test: status and parsed body. */
const call = (method: "GET" | "POST", path: string, body?: unknown) =>
  Effect.gen(function*() {
    const { url } = yield* SchemaRegistry.SchemaRegistry
    const client = yield* HttpClient.HttpClient
    const request = HttpClientRequest.make(method)(url + path).pipe(
      HttpClientRequest.setHeader("accept", vnd),
      (r) => body === undefined ? r : HttpClientRequest.bodyText(r, JSON.stringify(body), vnd)
    )
    const response = yield* client.execute(request)
    return { status: response.status, body: JSON.parse(yield* response.text) as any }
  })

const register = (subject: string, schema: string) => call("POST", `/subjects/${subject}/versions`, { schema })

const invalid = (message: string) => ({
  status: 422,
  body: { error_code: 42201, message: `Invalid schema: ${message}` }
})

/** A record of `count` int fields. */
const wide = (count: number, name = "Wide") =>
  JSON.stringify({
    type: "record",
    name,
    fields: Array.from({ length: count }, (_, i) => ({ name: `f${i}`, type: "int" }))
  })

/** Arrays of arrays of ints, `depth` levels of JSON objects (written out: JSON.stringify itself recurses). */
const nestedArrays = (depth: number) => "{\"type\":\"array\",\"items\":".repeat(depth) + "\"int\"" + "}".repeat(depth)

/** A string schema with a custom attribute nested `depth` objects deep below the schema object. */
const deepAttribute = (depth: number) =>
  "{\"type\":\"string\",\"x\":" + "{\"x\":".repeat(depth) + "1" + "}".repeat(depth) + "}"

/** Records in records, each with one field whose type is the next record: 4 JSON levels per record. */
const nestedRecords = (records: number, innerType = "\"int\"") => {
  let schema = innerType
  for (let i = records; i > 0; i--) {
    schema = `{"type":"record","name":"R${i}","fields":[{"name":"f","type":${schema}}]}`
  }
  return schema
}

const client = FetchHttpClient.layer

describe("Schema Registry limits", () => {
  it.layer(Layer.mergeAll(SchemaRegistry.layer({ port: 0 }), client), { timeout: 60_000 })((it) => {
    it.effect("a schema above 1 MiB is refused with 42201 naming the size limit", () =>
      Effect.gen(function*() {
        const schema = wide(70_000)
        expect(yield* register("huge-value", schema)).toEqual(
          invalid(
            `the schema is ${Buffer.byteLength(schema)} bytes, above the limit of 1048576 bytes (maxSchemaBytes)`
          )
        )
      }))

    it.effect("a schema nested deeper than 1000 levels is refused with 42201 naming the depth limit", () =>
      Effect.gen(function*() {
        const tooDeep = invalid("the schema nests JSON objects and arrays deeper than 1000 levels (maxSchemaDepth)")
        expect(yield* register("deep-value", nestedArrays(3000))).toEqual(tooDeep)
        expect(yield* register("deep-value", nestedArrays(1001))).toEqual(tooDeep)
        expect(yield* register("deep-value", deepAttribute(100_000))).toEqual(tooDeep)
        expect(yield* register("deep-value", nestedRecords(2000))).toEqual(tooDeep)
        // lookups and compatibility checks parse the schema too
        expect(yield* call("POST", "/subjects/deep-value", { schema: nestedArrays(5000) })).toEqual(tooDeep)
        expect(
          yield* call("POST", "/compatibility/subjects/deep-value/versions/latest", {
            schema: nestedArrays(5000)
          })
        ).toEqual(tooDeep)
      }))

    it.effect("schemas at the depth limit are served by every endpoint", () =>
      Effect.gen(function*() {
        // 250 records in records with an int at the bottom (1000 levels), then the int promoted to a long
        const first = nestedRecords(250, "{\"type\":\"int\"}")
        const second = nestedRecords(250, "{\"type\":\"long\"}")
        const { body } = yield* register("at-limit-value", first)
        expect(body).toEqual({ id: expect.any(Number) })
        expect((yield* register("at-limit-value", first)).body).toEqual(body)
        expect((yield* call("POST", "/subjects/at-limit-value", { schema: first })).body).toMatchObject(body)
        expect((yield* call("GET", `/schemas/ids/${body.id}`)).status).toBe(200)
        expect((yield* call("GET", "/subjects/at-limit-value/versions/1/schema")).status).toBe(200)
        expect((yield* call("POST", "/compatibility/subjects/at-limit-value/versions/latest", { schema: second })).body)
          .toEqual({ is_compatible: true })
        expect((yield* register("at-limit-value", second)).status).toBe(200)
        expect((yield* call("GET", "/subjects/at-limit-value/versions")).body).toEqual([1, 2])
        expect((yield* register("arrays-value", nestedArrays(1000))).status).toBe(200)
        expect((yield* register("attribute-value", deepAttribute(999))).status).toBe(200)
      }))
  })

  it.layer(
    Layer.mergeAll(SchemaRegistry.layer({ port: 0, maxSchemaBytes: 4 << 20, maxSchemaFields: 100 }), client),
    { timeout: 60_000 }
  )((it) => {
    it.effect("a schema with more record fields than maxSchemaFields is refused, counting nested records", () =>
      Effect.gen(function*() {
        expect(yield* register("wide-value", wide(70_000))).toEqual(
          invalid("the schema has 70000 record fields, above the limit of 100 (maxSchemaFields)")
        )
        const nested = JSON.stringify({
          type: "record",
          name: "Outer",
          fields: [...JSON.parse(wide(60)).fields, { name: "inner", type: JSON.parse(wide(40, "Inner")) }]
        })
        expect(yield* register("wide-value", nested)).toEqual(
          invalid("the schema has 101 record fields, above the limit of 100 (maxSchemaFields)")
        )
        expect((yield* register("wide-value", wide(100))).status).toBe(200)
      }))
  })

  it.layer(Layer.mergeAll(SchemaRegistry.layer({ port: 0, maxSchemaBytes: 1000, maxSchemaDepth: 3 }), client))(
    (it) => {
      it.effect("the limits are options", () =>
        Effect.gen(function*() {
          expect((yield* register("small-value", nestedArrays(3))).status).toBe(200)
          expect(yield* register("small-value", nestedArrays(4))).toEqual(
            invalid("the schema nests JSON objects and arrays deeper than 3 levels (maxSchemaDepth)")
          )
          expect(yield* register("small-value", wide(40))).toMatchObject({
            status: 422,
            body: { error_code: 42201, message: expect.stringContaining("above the limit of 1000 bytes") }
          })
        }))

      it.effect("a request body larger than a schema of maxSchemaBytes can need is refused before it is read", () =>
        Effect.gen(function*() {
          const response = yield* register("small-value", " ".repeat(100_000) + nestedArrays(1))
          expect(response).toEqual({
            status: 422,
            body: {
              error_code: 42201,
              message: expect.stringMatching(
                /^Invalid schema: the request body is \d+ bytes, more than a schema of at most 1000 bytes \(maxSchemaBytes\) needs$/
              )
            }
          })
        }))
    }
  )
})
