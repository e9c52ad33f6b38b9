/**
 * A Confluent-compatible Schema Registry for development and tests: the REST subset that serializers and
 * `@kafkajs/confluent-schema-registry` use, Avro compatibility checks by the specification's resolution rules,
 * errors in the Confluent shape, state in memory or in a data directory.
 *
 * @since 0.1.0
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as SynchronizedRef from "effect/SynchronizedRef"
import { createServer } from "node:http"
import * as https from "node:https"
import * as path from "node:path"
import type * as Avro from "./registry/avro.js"
import type * as Compatibility from "./registry/compatibility.js"
import * as Http from "./registry/http.js"
import * as Store from "./registry/store.js"
import { SchemaRegistryError } from "./SchemaRegistryError.js"

export {
  /**
   * @since 0.1.0
   */
  SchemaRegistryError
} from "./SchemaRegistryError.js"

/**
 * A compatibility level: NONE, BACKWARD, FORWARD, FULL, or the `_TRANSITIVE` forms (checked against every
 * earlier version, not only the latest).
 *
 * @since 0.1.0
 */
export type CompatibilityLevel = Compatibility.Level

/**
 * @since 0.1.0
 */
export interface Options {
  /** @default 8081; 0 picks a free port */
  readonly port?: number | undefined
  /** @default "127.0.0.1" */
  readonly host?: string | undefined
  /**
   * Keep schemas, subjects and configs in `<dataDir>/schema-registry.json` (rewritten atomically on every change,
   * read at start). Memory only without it.
   */
  readonly dataDir?: string | undefined
  /** The global level until `PUT /config` sets one. @default "BACKWARD" */
  readonly defaultCompatibility?: CompatibilityLevel | undefined
  /**
   * Largest schema (UTF-8 bytes of its text) registered, looked up or checked; larger ones answer 422 / 42201, and
   * request bodies larger than such a schema can need are refused unread. @default 1 MiB (Confluent's store is a
   * Kafka topic with 1 MB messages)
   */
  readonly maxSchemaBytes?: number | undefined
  /** Deepest nesting of JSON objects and arrays in a schema (`{"type": "int"}` is 1). @default 1000 */
  readonly maxSchemaDepth?: number | undefined
  /** Most fields of all records of one schema together. @default 10000 */
  readonly maxSchemaFields?: number | undefined
  /**
   * HTTP basic auth: every request needs one of these users, else it is answered 401
   * (`{"error_code":401,"message":"Unauthorized"}`, as Confluent's). @default none (open)
   */
  readonly users?: ReadonlyArray<{ readonly username: string; readonly password: string }> | undefined
  /**
   * HTTPS (PEM texts); with `ca`, clients must present a certificate signed by it. @default none (HTTP)
   */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca?: string | undefined } | undefined
}

/**
 * The running registry, for tests: `SchemaRegistry.layer({ port: 0 })` provides it.
 *
 * @since 0.1.0
 * @category tags
 */
export class SchemaRegistry
  extends Context.Tag("@deimos/broker/SchemaRegistry")<SchemaRegistry, SchemaRegistry.Service>()
{}

/**
 * @since 0.1.0
 */
export declare namespace SchemaRegistry {
  /**
   * A running registry.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** `http://host:port` (`https://` with TLS), for clients' `host` / `schema.registry.url`. */
    readonly url: string
    readonly port: number
  }
}

/** The file the state lives in, under `dataDir`. */
const stateFile = "schema-registry.json"

/** Loads the saved state (or starts empty) and says how to save it. */
const storage = (dataDir: string | undefined, defaultLevel: CompatibilityLevel, limits: Avro.Limits) =>
  Effect.gen(function*() {
    if (dataDir === undefined) {
      return { initial: Store.empty(defaultLevel, limits), save: (_: Store.State) => Effect.void }
    }
    const fs = yield* FileSystem.FileSystem
    const file = path.join(dataDir, stateFile)
    const loadError = (message: string) => (cause: unknown) =>
      new SchemaRegistryError({ reason: "LoadState", message, cause })
    yield* Effect.mapError(fs.makeDirectory(dataDir, { recursive: true }), loadError(`Cannot create ${dataDir}`))
    const exists = yield* Effect.mapError(fs.exists(file), loadError(`Cannot read ${file}`))
    let initial = Store.empty(defaultLevel, limits)
    if (exists) {
      const text = yield* Effect.mapError(fs.readFileString(file), loadError(`Cannot read ${file}`))
      initial = yield* Either.mapLeft(
        Store.decode(text, defaultLevel, limits),
        (why) => loadError(`${file} does not hold Schema Registry state: ${why}`)(why)
      )
    }
    const save = (state: Store.State) => {
      const temporary = `${file}.tmp`
      return fs.writeFileString(temporary, Store.encode(state)).pipe(
        Effect.zipRight(fs.rename(temporary, file)),
        Effect.mapError((cause) =>
          new SchemaRegistryError({ reason: "SaveState", message: `Cannot write ${file}`, cause })
        )
      )
    }
    return { initial, save }
  }).pipe(Effect.provide(NodeFileSystem.layer))

/**
 * Starts the registry; it stops when the scope closes.
 *
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<SchemaRegistry.Service, SchemaRegistryError, Scope.Scope> =>
  Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    const requestedPort = options.port ?? 8081
    const limits: Avro.Limits = {
      maxBytes: options.maxSchemaBytes ?? 1024 * 1024,
      maxDepth: options.maxSchemaDepth ?? 1000,
      maxFields: options.maxSchemaFields ?? 10_000
    }
    const { initial, save } = yield* storage(options.dataDir, options.defaultCompatibility ?? "BACKWARD", limits)
    const state = yield* SynchronizedRef.make(initial)
    const users = options.users === undefined
      ? undefined
      : new Map(options.users.map(({ password, username }) => [username, password] as const))
    const tls = options.tls
    const server = HttpServer.serve(Http.app({ state, save, maxSchemaBytes: limits.maxBytes, users })).pipe(
      Layer.provideMerge(NodeHttpServer.layer(
        () =>
          tls === undefined ? createServer() : https.createServer({
            cert: tls.cert,
            key: tls.key,
            ...(tls.ca === undefined ? {} : { ca: tls.ca, requestCert: true, rejectUnauthorized: true })
          }),
        { port: requestedPort, host }
      ))
    )
    const context = yield* Layer.build(server).pipe(
      Effect.mapError((cause) =>
        new SchemaRegistryError({
          reason: "Listen",
          message: `Cannot start the Schema Registry on ${host}:${requestedPort}`,
          cause
        })
      )
    )
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "TcpAddress" ? address.port : requestedPort
    const urlHost = host.includes(":") ? `[${host}]` : host
    return { url: `${tls === undefined ? "http" : "https"}://${urlHost}:${port}`, port }
  })

/**
 * The registry as a layer, e.g. `it.layer(SchemaRegistry.layer({ port: 0 }))` in tests.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<SchemaRegistry, SchemaRegistryError> =>
  Layer.scoped(SchemaRegistry, make(options))
