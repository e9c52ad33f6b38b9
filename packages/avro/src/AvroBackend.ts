/**
 * Avro schema backends, each implementing the core `SchemaBackend` port (resolve a codec once per schema handle,
 * topic and use, then encode and decode with plain synchronous functions):
 * - `layerLocal`: schemas from directories (found by namespace + name, named types resolved across files) or
 *   attached to the schema handle; plain Avro binary.
 * - `layerSchemaRegistry`: Confluent wire format (magic 0, 4-byte schema id, Avro body). Resolving a codec for
 *   writing (producers) registers the value or key schema, as written, under `<topic>-value` / `<topic>-key` (the
 *   topic already carries the prefix); a codec resolved for reading (consumers) registers nothing and looks no
 *   subject up: decoding only fetches writer schemas by id (`Codec.load`, Deimos #159). Ids, writer types, unknown
 *   ids (for a while) and resolvers are cached; a newer compatible reader schema reads older messages.
 * - `layerValidation`: validates exactly like the others but does not encode Avro (bytes are the mock's JSON):
 *   the validating mock for unit tests of apps that use Avro.
 *
 * @since 0.1.0
 */
import { SchemaBackend, SchemaError } from "@deimos/core"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Schedule from "effect/Schedule"
import * as fs from "node:fs/promises"
import { localResolvers, validationResolvers } from "./internal/codecs.js"
import { type Common, makeCommon } from "./internal/common.js"
import { registryResolvers } from "./internal/registry.js"

/**
 * @since 0.1.0
 */
export interface LocalOptions {
  /** Directories searched (recursively) for `.avsc` files. @default [] */
  readonly schemaDirs?: ReadonlyArray<string> | undefined
}

/** The shared part of a backend, loaded when the effect runs (the schema directories are read then). */
const commonOf = (options: LocalOptions): Effect.Effect<Common, SchemaError.SchemaError> =>
  Effect.suspend(() => makeCommon(options.schemaDirs ?? []))

/**
 * The `avroLocal` backend. Fails with an `UnknownSchema` error naming the file when a schema directory holds a
 * file that cannot be loaded (bad JSON, a referenced type no file defines, a type defined twice).
 *
 * @since 0.1.0
 */
export const makeLocal = (options: LocalOptions = {}): Effect.Effect<
  SchemaBackend.SchemaBackend.Service,
  SchemaError.SchemaError
> => Effect.map(commonOf(options), (common) => SchemaBackend.make(localResolvers(common)))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerLocal = (
  options: LocalOptions = {}
): Layer.Layer<SchemaBackend.SchemaBackend, SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, makeLocal(options))

/**
 * The validating mock for Avro apps: validates and coerces like `avroLocal`, encodes with the mock's JSON, and
 * decodes to what `avroLocal` would hand a consumer (defaults filled, the values avsc reads back).
 *
 * @since 0.1.0
 */
export const makeValidation = (options: LocalOptions = {}): Effect.Effect<
  SchemaBackend.SchemaBackend.Service,
  SchemaError.SchemaError
> => Effect.map(commonOf(options), (common) => SchemaBackend.make(validationResolvers(common)))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerValidation = (
  options: LocalOptions = {}
): Layer.Layer<SchemaBackend.SchemaBackend, SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, makeValidation(options))

/**
 * TLS to the Schema Registry. A file wins over the inline text.
 *
 * @since 0.1.0
 */
export interface RegistryTls {
  /** CA certificates (PEM) trusted instead of the system's. */
  readonly ca?: string | ReadonlyArray<string> | undefined
  readonly caFile?: string | undefined
  /** The client certificate (PEM), for mutual TLS; needs `key`. */
  readonly cert?: string | undefined
  readonly certFile?: string | undefined
  /** The client certificate's private key (PEM). */
  readonly key?: Redacted.Redacted<string> | undefined
  readonly keyFile?: string | undefined
  /** The name the registry's certificate must be for, when it is not the URL's host. */
  readonly servername?: string | undefined
  /** @default true */
  readonly rejectUnauthorized?: boolean | undefined
}

/**
 * @since 0.1.0
 */
export interface RegistryOptions extends LocalOptions {
  /** The Schema Registry's base URL, e.g. `http://localhost:8081`. */
  readonly url: string
  /** HTTP basic auth (Confluent Cloud: the API key and secret). @default none */
  readonly auth?: { readonly username: string; readonly password: Redacted.Redacted } | undefined
  /** `Authorization: Bearer <token>`, when there is no `auth`. @default none */
  readonly bearerToken?: Redacted.Redacted<string> | undefined
  /**
   * HTTPS with a private CA and/or a client certificate (PEM texts, or files read when the backend is made);
   * without it an `https://` URL trusts the system's CAs. @default none
   */
  readonly tls?: RegistryTls | undefined
  /**
   * Register schemas when a codec is resolved for writing; with `false`, resolving only looks the schema's id up.
   * Codecs resolved for reading never register nor look a subject up. @default true
   */
  readonly register?: boolean | undefined
  /** The subject of a topic's values or keys. @default `<topic>-value` / `<topic>-key` */
  readonly subject?: ((topic: string, kind: "value" | "key") => string) | undefined
  /** Retries of retriable registry failures (unreachable, timed out, 5xx). @default 5 */
  readonly retries?: number | undefined
  /** The backoff between those retries. @default Schedule.exponential("100 millis") */
  readonly retrySchedule?: Schedule.Schedule<unknown, SchemaError.SchemaError> | undefined
  /**
   * How long one registry request may take; past it the attempt fails with a retriable `Registry` error (and is
   * retried like other retriable failures). @default "10 seconds"
   */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /**
   * How long a writer schema id the registry does not know (a 404) is remembered: until then, messages written with
   * it fail to decode (a `Decode` error) without asking the registry again, and the miss is logged once, when the
   * registry answers it. `0` asks for every such message. @default "30 seconds"
   */
  readonly unknownIdTtl?: Duration.DurationInput | undefined
}

/**
 * The `avroSchemaRegistry` backend. Fails like `makeLocal` when a schema directory cannot be loaded; the registry
 * is first asked when a codec is resolved for writing, or when a message's writer schema is loaded.
 *
 * @since 0.1.0
 */
export const makeSchemaRegistry = (options: RegistryOptions): Effect.Effect<
  SchemaBackend.SchemaBackend.Service,
  SchemaError.SchemaError
> =>
  Effect.gen(function*() {
    const tls = options.tls === undefined ? undefined : yield* readTls(options.tls)
    const common = yield* commonOf(options)
    return SchemaBackend.make(registryResolvers(common, { ...options, tls }))
  })

const readFile = (file: string, setting: string) =>
  Effect.tryPromise({
    try: () => fs.readFile(file, "utf8"),
    catch: (cause) =>
      new SchemaError.SchemaError({
        reason: "Registry",
        retriable: false,
        cause,
        message: `Cannot read ${file} (check ${setting})`
      })
  })

/** The TLS settings with their files read. */
const readTls = (tls: RegistryTls): Effect.Effect<RegistryTls, SchemaError.SchemaError> =>
  Effect.gen(function*() {
    const ca = tls.caFile === undefined
      ? tls.ca
      : yield* readFile(tls.caFile, "tls.caFile, SCHEMA_REGISTRY_SSL_CA_FILE")
    const cert = tls.certFile === undefined
      ? tls.cert
      : yield* readFile(tls.certFile, "tls.certFile, SCHEMA_REGISTRY_SSL_CERT_FILE")
    const key = tls.keyFile === undefined
      ? tls.key
      : Redacted.make(yield* readFile(tls.keyFile, "tls.keyFile, SCHEMA_REGISTRY_SSL_KEY_FILE"))
    return { ca, cert, key, servername: tls.servername, rejectUnauthorized: tls.rejectUnauthorized }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layerSchemaRegistry = (
  options: RegistryOptions
): Layer.Layer<SchemaBackend.SchemaBackend, SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, makeSchemaRegistry(options))

const schemaDirsConfig = Config.withDefault(
  Config.map(Config.string("AVRO_SCHEMA_DIRS"), (s) => s.split(",").map((d) => d.trim()).filter((d) => d !== "")),
  []
)

/**
 * `AVRO_SCHEMA_DIRS` (comma-separated directories, default none).
 *
 * @since 0.1.0
 */
export const localConfig: Config.Config<LocalOptions> = Config.all({ schemaDirs: schemaDirsConfig })

/**
 * `AVRO_SCHEMA_DIRS` (comma-separated, default none), `SCHEMA_REGISTRY_URL` (required),
 * `SCHEMA_REGISTRY_USERNAME` and `SCHEMA_REGISTRY_PASSWORD` (redacted; basic auth when both are set),
 * `SCHEMA_REGISTRY_BEARER_TOKEN` (redacted), `SCHEMA_REGISTRY_SSL_CA_FILE`, `SCHEMA_REGISTRY_SSL_CERT_FILE` and
 * `SCHEMA_REGISTRY_SSL_KEY_FILE` (PEM files: a private CA, a client certificate),
 * `SCHEMA_REGISTRY_REGISTER` (default true), `SCHEMA_REGISTRY_RETRIES` (default 5),
 * `SCHEMA_REGISTRY_REQUEST_TIMEOUT` (a duration such as `10 seconds` or `500 millis`; default 10 seconds),
 * `SCHEMA_REGISTRY_UNKNOWN_ID_TTL` (a duration; default 30 seconds).
 *
 * @since 0.1.0
 */
export const registryConfig: Config.Config<RegistryOptions> = Config.all({
  schemaDirs: schemaDirsConfig,
  url: Config.string("SCHEMA_REGISTRY_URL"),
  auth: Config.option(Config.all({
    username: Config.string("SCHEMA_REGISTRY_USERNAME"),
    password: Config.redacted("SCHEMA_REGISTRY_PASSWORD")
  })),
  bearerToken: Config.option(Config.redacted("SCHEMA_REGISTRY_BEARER_TOKEN")),
  tls: Config.all({
    caFile: Config.option(Config.string("SCHEMA_REGISTRY_SSL_CA_FILE")),
    certFile: Config.option(Config.string("SCHEMA_REGISTRY_SSL_CERT_FILE")),
    keyFile: Config.option(Config.string("SCHEMA_REGISTRY_SSL_KEY_FILE"))
  }),
  register: Config.withDefault(Config.boolean("SCHEMA_REGISTRY_REGISTER"), true),
  retries: Config.option(Config.integer("SCHEMA_REGISTRY_RETRIES")),
  requestTimeout: Config.option(Config.duration("SCHEMA_REGISTRY_REQUEST_TIMEOUT")),
  unknownIdTtl: Config.option(Config.duration("SCHEMA_REGISTRY_UNKNOWN_ID_TTL"))
}).pipe(
  Config.map(({ auth, bearerToken, requestTimeout, retries, tls, unknownIdTtl, ...rest }) => ({
    ...rest,
    auth: Option.getOrUndefined(auth),
    bearerToken: Option.getOrUndefined(bearerToken),
    tls: Option.isNone(tls.caFile) && Option.isNone(tls.certFile) && Option.isNone(tls.keyFile)
      ? undefined
      : {
        caFile: Option.getOrUndefined(tls.caFile),
        certFile: Option.getOrUndefined(tls.certFile),
        keyFile: Option.getOrUndefined(tls.keyFile)
      },
    retries: Option.getOrUndefined(retries),
    requestTimeout: Option.getOrUndefined(requestTimeout),
    unknownIdTtl: Option.getOrUndefined(unknownIdTtl)
  }))
)

/**
 * `layerLocal` with its options read from `Config` (by default {@link localConfig}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLocalConfig = (
  options: Config.Config.Wrap<LocalOptions> = localConfig
): Layer.Layer<SchemaBackend.SchemaBackend, ConfigError.ConfigError | SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, Effect.flatMap(Config.unwrap(options), makeLocal))

/**
 * `layerValidation` with its options read from `Config` (by default {@link localConfig}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerValidationConfig = (
  options: Config.Config.Wrap<LocalOptions> = localConfig
): Layer.Layer<SchemaBackend.SchemaBackend, ConfigError.ConfigError | SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, Effect.flatMap(Config.unwrap(options), makeValidation))

/**
 * `layerSchemaRegistry` with its options read from `Config` (by default {@link registryConfig}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSchemaRegistryConfig = (
  options: Config.Config.Wrap<RegistryOptions> = registryConfig
): Layer.Layer<SchemaBackend.SchemaBackend, ConfigError.ConfigError | SchemaError.SchemaError> =>
  Layer.effect(SchemaBackend.SchemaBackend, Effect.flatMap(Config.unwrap(options), makeSchemaRegistry))
