/**
 * The Confluent REST subset over the pure store: routes, request bodies, Confluent error bodies, and changes
 * serialised through one `SynchronizedRef` so that each change is saved before it is answered.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as SynchronizedRef from "effect/SynchronizedRef"
import * as crypto from "node:crypto"
import type { SchemaRegistryError } from "../SchemaRegistryError.js"
import * as Store from "./store.js"

/** The state and how to persist it (a no-op in memory). */
export interface Registry {
  readonly state: SynchronizedRef.SynchronizedRef<Store.State>
  readonly save: (state: Store.State) => Effect.Effect<void, SchemaRegistryError>
  /** Largest schema accepted; bounds the request bodies read too. */
  readonly maxSchemaBytes: number
  /** Basic-auth users (name → password): when set, every request needs one of them. */
  readonly users?: ReadonlyMap<string, string> | undefined
}

const digest = (text: string) => crypto.createHash("sha256").update(text, "utf8").digest()

/**
 * Whether the `Authorization` header names one of the users with its password (compared in constant time). The
 * password is never logged nor answered.
 */
const authorized = (users: ReadonlyMap<string, Buffer>, header: string | undefined): boolean => {
  const match = header === undefined ? null : /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header.trim())
  if (match === null) return false
  const decoded = Buffer.from(match[1], "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  if (colon < 0) return false
  const expected = users.get(decoded.slice(0, colon))
  const given = digest(decoded.slice(colon + 1))
  return expected !== undefined && crypto.timingSafeEqual(expected, given)
}

/**
 * The largest body a schema of `maxSchemaBytes` can need: JSON escapes a character in at most 6 bytes (`\u0000`),
 * plus room for the other fields.
 */
const maxBodyBytes = (maxSchemaBytes: number) => 6 * maxSchemaBytes + 64 * 1024

export const contentType = "application/vnd.schemaregistry.v1+json"

const acceptedContentTypes: ReadonlyArray<string> = [
  "application/vnd.schemaregistry.v1+json",
  "application/vnd.schemaregistry+json",
  "application/json",
  "application/octet-stream"
]

const json = (status: number, body: unknown) => HttpServerResponse.unsafeJson(body, { status, contentType })

/** Runs a handler: its value is the 200 body; `ApiError`s become Confluent errors; a failed save is a 500. */
const handle = <A, R>(effect: Effect.Effect<A, Store.ApiError | SchemaRegistryError, R>) =>
  effect.pipe(
    Effect.map((body) => json(200, body)),
    Effect.catchTags({
      ApiError: (error) => Effect.succeed(json(error.status, { error_code: error.errorCode, message: error.message })),
      SchemaRegistryError: (error) =>
        Effect.as(
          Effect.logError("Schema Registry: cannot save its state", error),
          json(500, { error_code: 50001, message: `Error in the backend data store: ${error.message}` })
        )
    })
  )

const param = (name: string) => Effect.map(HttpRouter.params, (params) => params[name] ?? "")

const flag = (name: string) => Effect.map(HttpServerRequest.ParsedSearchParams, (params) => params[name] === "true")

/**
 * The JSON body; 415 for other content types, 422 when it is larger than a schema within the limit can need (by
 * its Content-Length, before reading it; a body without one stops being read there), 400 when it does not parse.
 */
const body = (maxSchemaBytes: number) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const type = request.headers["content-type"]?.split(";")[0]?.trim().toLowerCase()
    if (type !== undefined && type !== "" && !acceptedContentTypes.includes(type)) {
      return yield* new Store.ApiError({ status: 415, errorCode: 415, message: "HTTP 415 Unsupported Media Type" })
    }
    const limit = maxBodyBytes(maxSchemaBytes)
    const length = Number(request.headers["content-length"] ?? 0)
    if (length > limit) {
      return yield* Effect.fail(
        Store.errors.invalidSchema(
          `the request body is ${length} bytes, more than a schema of at most ${maxSchemaBytes} bytes (maxSchemaBytes) needs`
        )
      )
    }
    const text = yield* request.text.pipe(
      HttpServerRequest.withMaxBodySize(Option.some(limit)),
      Effect.mapError((cause) =>
        new Store.ApiError({ status: 400, errorCode: 400, message: `Cannot read the request body: ${cause}` })
      )
    )
    return yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (cause) =>
        new Store.ApiError({
          status: 400,
          errorCode: 400,
          message: `Unrecognized or malformed JSON body: ${cause instanceof Error ? cause.message : String(cause)}`
        })
    })
  })

/** A `{ "schema": "...", "schemaType"?: "AVRO" }` body. */
const schemaBodyOf = (maxSchemaBytes: number) =>
  Effect.flatMap(body(maxSchemaBytes), (value) => {
    const fields = (typeof value === "object" && value !== null ? value : {}) as {
      readonly schema?: unknown
      readonly schemaType?: unknown
      readonly references?: unknown
    }
    if (typeof fields.schema !== "string" || fields.schema.trim() === "") {
      return Effect.fail(Store.errors.invalidSchema("the body needs a non-empty \"schema\" string"))
    }
    if (fields.schemaType !== undefined && fields.schemaType !== null && fields.schemaType !== "AVRO") {
      return Effect.fail(
        Store.errors.invalidSchema(`schema type ${JSON.stringify(fields.schemaType)} is not supported (AVRO only)`)
      )
    }
    if (Array.isArray(fields.references) && fields.references.length > 0) {
      return Effect.fail(Store.errors.invalidSchema("schema references are not supported"))
    }
    return Effect.succeed(fields.schema)
  })

/** A `{ "compatibility": LEVEL }` body. */
const levelBodyOf = (maxSchemaBytes: number) =>
  Effect.map(body(maxSchemaBytes), (value) =>
    typeof value === "object" && value !== null && "compatibility" in value
      ? (value as { readonly compatibility: unknown }).compatibility
      : undefined)

/** The schema id path segment; anything but a positive integer is an unknown schema, as Confluent answers. */
const schemaId = Effect.flatMap(param("id"), (id) =>
  /^\d{1,10}$/.test(id) && Number(id) >= 1
    ? Effect.succeed(Number(id))
    : Effect.fail(new Store.ApiError({ status: 404, errorCode: 40403, message: `Schema ${id} not found` })))

/** The router, behind basic auth when the registry has users: 401 in Confluent's shape without valid ones. */
export const app = (registry: Registry) => {
  const routes = router(registry)
  if (registry.users === undefined) return routes
  const users = new Map([...registry.users].map(([name, password]) => [name, digest(password)] as const))
  return Effect.flatMap(
    HttpServerRequest.HttpServerRequest,
    (request) =>
      authorized(users, request.headers["authorization"])
        ? routes
        : Effect.succeed(
          HttpServerResponse.unsafeJson({ error_code: 401, message: "Unauthorized" }, {
            status: 401,
            contentType,
            headers: { "www-authenticate": `Basic realm="SchemaRegistry"` }
          })
        )
  )
}

export const router = (registry: Registry) => {
  const schemaBody = schemaBodyOf(registry.maxSchemaBytes)
  const levelBody = levelBodyOf(registry.maxSchemaBytes)
  const read = <A>(f: (state: Store.State) => Either.Either<A, Store.ApiError>) =>
    Effect.flatMap(SynchronizedRef.get(registry.state), f)

  const change = <A>(f: (state: Store.State) => Either.Either<Store.Changed<A>, Store.ApiError>) =>
    SynchronizedRef.modifyEffect(
      registry.state,
      (current) =>
        Effect.flatMap(f(current), ({ result, state }) =>
          state === current
            ? Effect.succeed([result, current] as const)
            : Effect.as(registry.save(state), [result, state] as const))
    )

  return HttpRouter.empty.pipe(
    HttpRouter.get("/", Effect.succeed(json(200, {}))),
    HttpRouter.get("/schemas/types", Effect.succeed(json(200, ["AVRO"]))),
    HttpRouter.get(
      "/schemas/ids/:id",
      handle(Effect.flatMap(schemaId, (id) => read((s) => Store.schemaById(s, id))))
    ),
    HttpRouter.get(
      "/schemas/ids/:id/versions",
      handle(Effect.flatMap(schemaId, (id) => read((s) => Store.subjectVersionsById(s, id))))
    ),
    HttpRouter.get("/subjects", handle(Effect.map(SynchronizedRef.get(registry.state), Store.subjects))),
    HttpRouter.get(
      "/subjects/:subject/versions",
      handle(Effect.flatMap(param("subject"), (subject) => read((s) => Store.versions(s, subject))))
    ),
    HttpRouter.get(
      "/subjects/:subject/versions/:version",
      handle(Effect.gen(function*() {
        const subject = yield* param("subject")
        const version = yield* param("version")
        return yield* read((s) => Store.version(s, subject, version))
      }))
    ),
    HttpRouter.get(
      "/subjects/:subject/versions/:version/schema",
      handle(Effect.gen(function*() {
        const subject = yield* param("subject")
        const version = yield* param("version")
        const found = yield* read((s) => Store.version(s, subject, version))
        return JSON.parse(found.schema) as unknown
      }))
    ),
    HttpRouter.post(
      "/subjects/:subject",
      handle(Effect.gen(function*() {
        const subject = yield* param("subject")
        const schema = yield* schemaBody
        return yield* read((s) => Store.lookup(s, subject, schema))
      }))
    ),
    HttpRouter.post(
      "/subjects/:subject/versions",
      handle(Effect.gen(function*() {
        const subject = yield* param("subject")
        const schema = yield* schemaBody
        return yield* change((s) => Store.register(s, subject, schema))
      }))
    ),
    HttpRouter.del(
      "/subjects/:subject",
      handle(Effect.flatMap(param("subject"), (subject) => change((s) => Store.deleteSubject(s, subject))))
    ),
    HttpRouter.del(
      "/subjects/:subject/versions/:version",
      handle(Effect.gen(function*() {
        const subject = yield* param("subject")
        const version = yield* param("version")
        return yield* change((s) => Store.deleteVersion(s, subject, version))
      }))
    ),
    HttpRouter.get("/config", handle(read((s) => Store.getConfig(s, undefined)))),
    HttpRouter.put(
      "/config",
      handle(Effect.flatMap(levelBody, (level) => change((s) => Store.setConfig(s, undefined, level))))
    ),
    HttpRouter.get(
      "/config/:subject",
      handle(Effect.gen(function*() {
        const subject = yield* param("subject")
        const defaultToGlobal = yield* flag("defaultToGlobal")
        return yield* read((s) => Store.getConfig(s, subject, defaultToGlobal))
      }))
    ),
    HttpRouter.put(
      "/config/:subject",
      handle(Effect.gen(function*() {
        const subject = yield* param("subject")
        const level = yield* levelBody
        return yield* change((s) => Store.setConfig(s, subject, level))
      }))
    ),
    HttpRouter.del(
      "/config/:subject",
      handle(Effect.flatMap(param("subject"), (subject) => change((s) => Store.deleteConfig(s, subject))))
    ),
    HttpRouter.post(
      "/compatibility/subjects/:subject/versions",
      handle(compatibility(read, schemaBody, undefined))
    ),
    HttpRouter.post(
      "/compatibility/subjects/:subject/versions/:version",
      handle(Effect.flatMap(param("version"), (version) => compatibility(read, schemaBody, version)))
    ),
    HttpRouter.all("*", Effect.succeed(json(404, { error_code: 404, message: "HTTP 404 Not Found" })))
  )
}

/** `is_compatible`, with `messages` when `?verbose=true`, as Confluent answers. */
const compatibility = (
  read: <A>(
    f: (state: Store.State) => Either.Either<A, Store.ApiError>
  ) => Effect.Effect<A, Store.ApiError>,
  schemaBody: Effect.Effect<string, Store.ApiError, HttpServerRequest.HttpServerRequest>,
  version: string | undefined
) =>
  Effect.gen(function*() {
    const subject = yield* param("subject")
    const schema = yield* schemaBody
    const verbose = yield* flag("verbose")
    const result = yield* read((s) => Store.compatibility(s, subject, schema, version))
    return verbose ? result : { is_compatible: result.is_compatible }
  })
