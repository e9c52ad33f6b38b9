import { AvroBackend } from "@deimos/avro"
import { DevCertificates, SchemaRegistry } from "@deimos/broker"
import { SchemaBackend, SchemaRef } from "@deimos/core"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as http from "node:http"
import * as path from "node:path"

const Point = SchemaRef.make<{ readonly x: number }>({
  name: "com.example.Point",
  avro: { type: "record", name: "Point", namespace: "com.example", fields: [{ name: "x", type: "int" }] }
})

const users = [{ username: "registry-user", password: "registry-Pa55" }]
const auth = { username: "registry-user", password: Redacted.make("registry-Pa55") }

/** Encodes (registering the schema) and decodes one value through `backend`. */
const roundTrip = (backend: SchemaBackend.SchemaBackend.Service) =>
  Effect.gen(function*() {
    const writer = yield* backend.codec(Point, "points", "write")
    const bytes = yield* writer.encode({ x: 42 })
    const reader = yield* backend.codec(Point, "points", "read")
    return yield* SchemaBackend.decodeWith(reader, bytes)
  })

describe("the Schema Registry client with auth and TLS", () => {
  it.scopedLive("basic auth over HTTPS with a private CA from a file; without credentials a 401 naming the settings", () =>
    Effect.gen(function*() {
      const certs = yield* DevCertificates.make()
      const { url } = yield* SchemaRegistry.make({ port: 0, users, tls: certs.server })
      const tls = { caFile: path.join(certs.dir, "ca.pem") }
      const backend = yield* AvroBackend.makeSchemaRegistry({ url, auth, tls })
      expect(yield* roundTrip(backend)).toEqual({ x: 42 })

      const anonymous = yield* AvroBackend.makeSchemaRegistry({ url, tls, retries: 3 })
      const refused = yield* Effect.flip(roundTrip(anonymous))
      expect(refused.retriable).toBe(false)
      expect(refused.message).toContain("Schema Registry answered 401")
      expect(refused.message).toContain("SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD")

      const wrong = yield* AvroBackend.makeSchemaRegistry({
        url,
        tls,
        auth: { username: "registry-user", password: Redacted.make("nope") }
      })
      expect((yield* Effect.flip(roundTrip(wrong))).message).toContain("401")

      // a client trusting another CA: not retried, the message names the CA setting
      const otherCa = yield* AvroBackend.makeSchemaRegistry({ url, auth, tls: { ca: certs.otherCa }, retries: 3 })
      const untrusted = yield* Effect.flip(roundTrip(otherCa))
      expect(untrusted.retriable).toBe(false)
      expect(untrusted.message).toContain("check the registry TLS CA")
      expect(untrusted.message).not.toContain("registry-Pa55")
    }))

  it.scopedLive("mutual TLS: the client certificate and key from files or inline", () =>
    Effect.gen(function*() {
      const certs = yield* DevCertificates.make()
      const { url } = yield* SchemaRegistry.make({ port: 0, tls: { ...certs.server, ca: certs.ca } })
      const files = yield* AvroBackend.makeSchemaRegistry({
        url,
        tls: {
          caFile: path.join(certs.dir, "ca.pem"),
          certFile: path.join(certs.dir, "client.pem"),
          keyFile: path.join(certs.dir, "client.key")
        }
      })
      expect(yield* roundTrip(files)).toEqual({ x: 42 })
      const inline = yield* AvroBackend.makeSchemaRegistry({
        url,
        tls: { ca: certs.ca, cert: certs.client.cert, key: Redacted.make(certs.client.key) }
      })
      expect(yield* roundTrip(inline)).toEqual({ x: 42 })
      const missingFile = yield* Effect.flip(
        AvroBackend.makeSchemaRegistry({ url, tls: { caFile: path.join(certs.dir, "missing.pem") } })
      )
      expect(missingFile.message).toContain("SCHEMA_REGISTRY_SSL_CA_FILE")
    }))

  it.scopedLive("a bearer token is sent as Authorization: Bearer", () =>
    Effect.gen(function*() {
      const seen: Array<string | undefined> = []
      const server = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const s = http.createServer((request, response) => {
            seen.push(request.headers.authorization)
            response.writeHead(200, { "content-type": "application/vnd.schemaregistry.v1+json" })
            response.end(JSON.stringify({ id: 7 }))
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) => Effect.async<void>((resume) => void s.close(() => resume(Effect.void)))
      )
      const port = (server.address() as { port: number }).port
      const backend = yield* AvroBackend.makeSchemaRegistry({
        url: `http://127.0.0.1:${port}`,
        bearerToken: Redacted.make("the-token")
      })
      const writer = yield* backend.codec(Point, "points", "write")
      expect(writer).toBeDefined()
      expect(seen).toEqual(["Bearer the-token"])
    }))
})
