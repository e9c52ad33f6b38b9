/**
 * The schema backend of commands that read or write messages: `--format json` (the JSON backend) or `avro`
 * (Confluent wire format, schemas from the Schema Registry at `SCHEMA_REGISTRY_URL`).
 *
 * @since 0.1.0
 */
import { AvroBackend } from "@deimos/avro"
import { JsonBackend, type SchemaBackend, type SchemaError } from "@deimos/core"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import type * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import * as Settings from "./Settings.js"

/**
 * @since 0.1.0
 */
export type Format = "json" | "avro"

/**
 * `--format json|avro`, over `DEIMOS_SCHEMA_BACKEND` (default `json`).
 *
 * @since 0.1.0
 */
export const format: Options.Options<Format> = Options.choice("format", ["json", "avro"]).pipe(
  Options.withDescription(
    "Schema backend: json, or avro (Confluent wire format, schemas from the registry). Env DEIMOS_SCHEMA_BACKEND; " +
      "default json."
  ),
  Options.withFallbackConfig(Config.withDefault(Config.literal("json", "avro")("DEIMOS_SCHEMA_BACKEND"), "json"))
)

/**
 * `--registry-url`, over `SCHEMA_REGISTRY_URL`.
 *
 * @since 0.1.0
 */
export const registryUrl: Options.Options<Option.Option<string>> = Settings.setting(
  "registry-url",
  "SCHEMA_REGISTRY_URL",
  "Schema Registry URL, for --format avro (SCHEMA_REGISTRY_* variables apply too)."
)

/**
 * The settings of the backend `format` (read before anything connects).
 *
 * @since 0.1.0
 */
export const config = (format: Format): Config.Config<AvroBackend.RegistryOptions | undefined> =>
  format === "avro" ? AvroBackend.registryConfig : Config.succeed(undefined)

/**
 * The backend for `format` with the settings `config` read.
 *
 * @since 0.1.0
 */
export const layer = (
  registry: AvroBackend.RegistryOptions | undefined
): Layer.Layer<SchemaBackend.SchemaBackend, SchemaError.SchemaError> =>
  registry === undefined ? JsonBackend.layer : AvroBackend.layerSchemaRegistry(registry)
