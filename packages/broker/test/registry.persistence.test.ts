import { SchemaRegistry } from "@deimos/broker"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const record = (fields: ReadonlyArray<object>) =>
  JSON.stringify({ type: "record", name: "Order", namespace: "shop", fields })
const v1 = record([{ name: "id", type: "int" }])
const v2 = record([{ name: "id", type: "int" }, { name: "note", type: "string", default: "" }])
const v3 = record([{ name: "id", type: "long" }, { name: "note", type: "string", default: "" }])

const call = (url: string, method: "GET" | "POST" | "PUT", urlPath: string, body?: unknown) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const request = HttpClientRequest.make(method)(url + urlPath).pipe((r) =>
      body === undefined
        ? r
        : HttpClientRequest.bodyText(r, JSON.stringify(body), "application/vnd.schemaregistry.v1+json")
    )
    const response = yield* client.execute(request)
    return { status: response.status, body: JSON.parse(yield* response.text) as any }
  })

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "deimos-registry-"))

describe("Schema Registry with a data directory", () => {
  it.effect("ids, versions and configs survive a restart; new ids continue after the old ones", () =>
    Effect.gen(function*() {
      const dataDir = tempDir()
      const before = yield* Effect.scoped(Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.make({ port: 0, dataDir })
        const a = yield* call(url, "POST", "/subjects/orders-value/versions", { schema: v1 })
        const b = yield* call(url, "POST", "/subjects/orders-value/versions", { schema: v2 })
        yield* call(url, "POST", "/subjects/copies-value/versions", { schema: v2 })
        yield* call(url, "PUT", "/config/orders-value", { compatibility: "FORWARD" })
        yield* call(url, "PUT", "/config", { compatibility: "FULL" })
        return { a: a.body.id as number, b: b.body.id as number }
      }))
      expect(fs.existsSync(path.join(dataDir, "schema-registry.json"))).toBe(true)

      yield* Effect.scoped(Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.make({ port: 0, dataDir })
        expect((yield* call(url, "GET", "/subjects")).body).toEqual(["copies-value", "orders-value"])
        expect((yield* call(url, "GET", "/subjects/orders-value/versions")).body).toEqual([1, 2])
        expect((yield* call(url, "GET", "/subjects/orders-value/versions/1")).body).toMatchObject({ id: before.a })
        expect((yield* call(url, "GET", "/subjects/copies-value/versions/latest")).body).toMatchObject({
          id: before.b,
          version: 1
        })
        expect(JSON.parse((yield* call(url, "GET", `/schemas/ids/${before.b}`)).body.schema).fields).toHaveLength(2)
        expect((yield* call(url, "GET", "/config/orders-value")).body).toEqual({ compatibilityLevel: "FORWARD" })
        expect((yield* call(url, "GET", "/config")).body).toEqual({ compatibilityLevel: "FULL" })
        // the same schema keeps its id and adds no version
        expect((yield* call(url, "POST", "/subjects/orders-value/versions", { schema: v2 })).body).toEqual({
          id: before.b
        })
        // the subject's FORWARD level still applies: int → long is not forward compatible
        expect((yield* call(url, "POST", "/subjects/orders-value/versions", { schema: v3 })).status).toBe(409)
        yield* call(url, "PUT", "/config/orders-value", { compatibility: "NONE" })
        const next = yield* call(url, "POST", "/subjects/orders-value/versions", { schema: v3 })
        expect(next.body.id).toBe(Math.max(before.a, before.b) + 1)
        expect((yield* call(url, "GET", "/subjects/orders-value/versions")).body).toEqual([1, 2, 3])
      }))
    }).pipe(Effect.provide(FetchHttpClient.layer)))

  it.effect("concurrent registrations are saved one at a time: no lost or duplicate versions", () =>
    Effect.gen(function*() {
      const dataDir = tempDir()
      const schemas = Array.from(
        { length: 8 },
        (_, i) => record([{ name: "id", type: "int" }, { name: `extra${i}`, type: "int", default: i }])
      )
      yield* Effect.scoped(Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.make({ port: 0, dataDir })
        const answers = yield* Effect.forEach(
          [...schemas, ...schemas],
          (schema) => call(url, "POST", "/subjects/busy-value/versions", { schema }),
          { concurrency: "unbounded" }
        )
        expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200))
        expect(new Set(answers.map((a) => a.body.id)).size).toBe(8)
      }))
      yield* Effect.scoped(Effect.gen(function*() {
        const { url } = yield* SchemaRegistry.make({ port: 0, dataDir })
        expect((yield* call(url, "GET", "/subjects/busy-value/versions")).body).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
      }))
    }).pipe(Effect.provide(FetchHttpClient.layer)))

  it.effect("a data file that is not registry state stops the start with LoadState", () =>
    Effect.gen(function*() {
      const dataDir = tempDir()
      fs.writeFileSync(path.join(dataDir, "schema-registry.json"), "{\"format\": 1, \"schemas\": 3}")
      const error = yield* Effect.flip(Effect.scoped(SchemaRegistry.make({ port: 0, dataDir })))
      expect(error._tag).toBe("SchemaRegistryError")
      expect(error.reason).toBe("LoadState")
      expect(error.message).toContain("schema-registry.json")
    }))

  it.effect("a failed save answers 500 / 50001 and does not apply the change", () =>
    Effect.gen(function*() {
      const dataDir = tempDir()
      yield* Effect.scoped(
        Effect.gen(function*() {
          const { url } = yield* SchemaRegistry.make({ port: 0, dataDir })
          expect((yield* call(url, "POST", "/subjects/ok-value/versions", { schema: v1 })).status).toBe(200)
          // a non-empty directory where the file goes: the rename onto it fails
          const file = path.join(dataDir, "schema-registry.json")
          fs.rmSync(file)
          fs.mkdirSync(path.join(file, "blocker"), { recursive: true })
          const failed = yield* call(url, "POST", "/subjects/lost-value/versions", { schema: v1 })
          expect(failed).toMatchObject({ status: 500, body: { error_code: 50001 } })
          expect((yield* call(url, "GET", "/subjects")).body).toEqual(["ok-value"])
        }).pipe(Effect.provide(FetchHttpClient.layer))
      )
    }))

  it.effect("a port already in use fails the start with Listen; closing the scope frees the port", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        const { port } = yield* SchemaRegistry.make({ port: 0 })
        const error = yield* Effect.flip(Effect.scoped(SchemaRegistry.make({ port })))
        expect(error.reason).toBe("Listen")
        expect(error.message).toContain(String(port))
      }))
    }))

  it.effect("memory only without a data directory: a restart starts empty", () =>
    Effect.gen(function*() {
      const port = yield* Effect.scoped(Effect.gen(function*() {
        const { port, url } = yield* SchemaRegistry.make({ port: 0 })
        yield* call(url, "POST", "/subjects/m-value/versions", { schema: v1 })
        return port
      }))
      // the same port is free again once the scope closed, and nothing was kept
      const { url } = yield* SchemaRegistry.make({ port })
      expect((yield* call(url, "GET", "/subjects")).body).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer)))
})
