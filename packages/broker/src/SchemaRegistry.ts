/**
 * A Confluent-compatible Schema Registry for development and tests: the REST subset that serializers and
 * `@kafkajs/confluent-schema-registry` use, real Avro compatibility checks, errors in the Confluent shape, state
 * in memory or in a data directory.
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { createServer } from "node:http"
import * as path from "node:path"
import type * as Compat from "./registry/compat.js"
import { failure, type RegistryFailure, Store } from "./registry/store.js"

/**
 * @since 0.1.0
 */
export interface Options {
  /** @default 8081; 0 picks a free port */
  readonly port?: number | undefined
  /** @default "127.0.0.1" */
  readonly host?: string | undefined
  /** Keep schemas, subjects and configs in `<dataDir>/schema-registry.json`. */
  readonly dataDir?: string | undefined
  /** @default "BACKWARD" */
  readonly defaultCompatibility?: Compat.Level | undefined
}

/**
 * @since 0.1.0
 */
export interface SchemaRegistryInfo {
  readonly url: string
  readonly port: number
}

/**
 * @since 0.1.0
 */
export class SchemaRegistryError extends Data.TaggedError("SchemaRegistryError")<{
  readonly reason: "Start"
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * @since 0.1.0
 * @category tags
 */
export class SchemaRegistry
  extends Context.Tag("@deimos/broker/SchemaRegistry")<SchemaRegistry, SchemaRegistryInfo>()
{}

const contentType = "application/vnd.schemaregistry.v1+json"

const respond = (result: object | ReadonlyArray<unknown>) => {
  if (!Array.isArray(result) && "status" in result && "error_code" in result) {
    const f = result as RegistryFailure
    return HttpServerResponse.unsafeJson({ error_code: f.error_code, message: f.message }, {
      status: f.status,
      contentType
    })
  }
  return HttpServerResponse.unsafeJson(result, { contentType })
}

const param = (name: string) => Effect.map(HttpRouter.params, (p) => decodeURIComponent(p[name] ?? ""))

/** The request body's `schema` field, or a 422 / 400 failure. */
const schemaBody = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const body = yield* Effect.either(request.json)
  if (body._tag === "Left") return failure(400, 400, "Unrecognized or malformed JSON body")
  const value = body.right as { schema?: unknown; schemaType?: unknown } | null
  if (typeof value !== "object" || value === null || typeof value.schema !== "string") {
    return failure(422, 42201, "Invalid schema: the body needs a \"schema\" string")
  }
  if (value.schemaType !== undefined && value.schemaType !== null && value.schemaType !== "AVRO") {
    return failure(422, 42201, `Invalid schema: schema type ${String(value.schemaType)} is not supported (AVRO only)`)
  }
  return { schema: value.schema }
})

const configBody = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const body = yield* Effect.either(request.json)
  if (body._tag === "Left") return failure(400, 400, "Unrecognized or malformed JSON body")
  const value = body.right as { compatibility?: unknown } | null
  return { level: typeof value === "object" && value !== null ? value.compatibility : undefined }
})

const router = (store: Store) =>
  HttpRouter.empty.pipe(
    HttpRouter.get(
      "/schemas/ids/:id",
      Effect.map(param("id"), (id) =>
        respond(/^\d+$/.test(id) ? store.schemaById(Number(id)) : failure(404, 40403, `Schema ${id} not found`)))
    ),
    HttpRouter.get(
      "/subjects",
      Effect.sync(() =>
        respond(store.listSubjects())
      )
    ),
    HttpRouter.get("/subjects/:subject/versions", Effect.map(param("subject"), (s) => respond(store.versions(s)))),
    HttpRouter.get(
      "/subjects/:subject/versions/:version",
      Effect.zipWith(param("subject"), param("version"), (s, v) => respond(store.version(s, v)))
    ),
    HttpRouter.post(
      "/subjects/:subject",
      Effect.zipWith(param("subject"), schemaBody, (s, body) =>
        respond("status" in body ? body : store.lookup(s, body.schema)))
    ),
    HttpRouter.post(
      "/subjects/:subject/versions",
      Effect.zipWith(param("subject"), schemaBody, (s, body) =>
        respond("status" in body ? body : store.register(s, body.schema)))
    ),
    HttpRouter.del(
      "/subjects/:subject",
      Effect.map(param("subject"), (s) =>
        respond(store.deleteSubject(s)))
    ),
    HttpRouter.get(
      "/config",
      Effect.sync(() =>
        respond(store.getConfig(undefined))
      )
    ),
    HttpRouter.put(
      "/config",
      Effect.map(configBody, (body) =>
        respond("status" in body ? body : store.setConfig(undefined, body.level)))
    ),
    HttpRouter.get(
      "/config/:subject",
      Effect.map(param("subject"), (s) =>
        respond(store.getConfig(s)))
    ),
    HttpRouter.put(
      "/config/:subject",
      Effect.zipWith(param("subject"), configBody, (s, body) =>
        respond("status" in body ? body : store.setConfig(s, body.level)))
    ),
    HttpRouter.post(
      "/compatibility/subjects/:subject/versions/:version",
      Effect.gen(function*() {
        const subject = yield* param("subject")
        const version = yield* param("version")
        const body = yield* schemaBody
        return respond("status" in body ? body : store.compatibility(subject, body.schema, version))
      })
    ),
    HttpRouter.all("*", Effect.succeed(respond(failure(404, 404, "HTTP 404 Not Found"))))
  )

/**
 * Starts the registry; it stops when the scope closes.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<SchemaRegistryInfo, SchemaRegistryError, Scope.Scope> =>
  Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    const store = yield* Effect.try({
      try: () =>
        new Store(
          options.defaultCompatibility ?? "BACKWARD",
          options.dataDir === undefined ? undefined : path.join(options.dataDir, "schema-registry.json")
        ),
      catch: (cause) =>
        new SchemaRegistryError({
          reason: "Start",
          message: `Cannot read the registry state in ${options.dataDir}`,
          cause
        })
    })
    const server = HttpServer.serve(router(store)).pipe(
      Layer.provideMerge(NodeHttpServer.layer(() => createServer(), { port: options.port ?? 8081, host }))
    )
    const context = yield* Layer.build(server).pipe(
      Effect.mapError((cause) =>
        new SchemaRegistryError({
          reason: "Start",
          message: `Cannot start the Schema Registry on ${host}:${options.port ?? 8081}`,
          cause
        })
      )
    )
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "TcpAddress" ? address.port : 0
    return { url: `http://${host}:${port}`, port }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<SchemaRegistry, SchemaRegistryError> =>
  Layer.scoped(SchemaRegistry, make(options))
