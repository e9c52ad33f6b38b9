/**
 * The kafkajs adapter of the `KafkaDriver` port. kafkajs types stay inside this module and its internal file, so a
 * second adapter needs no change outside its own module.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as internal from "./internal/kafkaJs.js"
import * as KafkaDriver from "./KafkaDriver.js"

/**
 * @since 0.1.0
 */
export interface Options {
  /** `host:port` of one or more brokers. */
  readonly brokers: ReadonlyArray<string>
  /** @default "deimos" */
  readonly clientId?: string | undefined
  /** TLS with the system's CAs. @default false */
  readonly ssl?: boolean | undefined
  /** SASL authentication; the password stays `Redacted` until kafkajs needs it. */
  readonly sasl?: {
    readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512"
    readonly username: string
    readonly password: Redacted.Redacted
  } | undefined
  /** @default 3 seconds */
  readonly connectionTimeout?: Duration.DurationInput | undefined
  /** @default 30 seconds */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** Connection attempts (exponential backoff from 200 ms) before a clear error. @default 5 */
  readonly connectAttempts?: number | undefined
  /**
   * How long a stopping consumer gives the batch in hand before interrupting it, and how long closing a
   * connection may take. @default 30 seconds
   */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** kafkajs's own logs at or above this level go to Effect's logger. @default "warn" */
  readonly logLevel?: "nothing" | "error" | "warn" | "info" | "debug" | undefined
}

/**
 * The adapter; kafkajs's logs and callbacks run on the current runtime.
 *
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<KafkaDriver.KafkaDriver.Service> =>
  Effect.map(Effect.runtime<never>(), (runtime) => internal.make(options, runtime))

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<KafkaDriver.KafkaDriver> =>
  Layer.effect(KafkaDriver.KafkaDriver, make(options))

/**
 * The options from `Config` (with the default provider, the environment): `KAFKA_BROKERS` (comma-separated),
 * `KAFKA_CLIENT_ID`, `KAFKA_SSL`, `KAFKA_SASL_MECHANISM` (`plain`, `scram-sha-256`, `scram-sha-512`),
 * `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD` (redacted), `KAFKA_CONNECTION_TIMEOUT`, `KAFKA_REQUEST_TIMEOUT`,
 * `KAFKA_CONNECT_ATTEMPTS`, `KAFKA_SHUTDOWN_TIMEOUT`, `KAFKA_LOG_LEVEL`. SASL is on when
 * `KAFKA_SASL_MECHANISM` is set.
 *
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  brokers: Config.map(Config.string("BROKERS"), (s) => s.split(",").map((b) => b.trim()).filter((b) => b !== "")),
  clientId: Config.withDefault(Config.string("CLIENT_ID"), "deimos"),
  ssl: Config.withDefault(Config.boolean("SSL"), false),
  sasl: Config.all({
    mechanism: Config.option(Config.literal("plain", "scram-sha-256", "scram-sha-512")("SASL_MECHANISM")),
    username: Config.option(Config.string("SASL_USERNAME")),
    password: Config.option(Config.redacted("SASL_PASSWORD"))
  }).pipe(Config.mapOrFail(({ mechanism, password, username }) => {
    if (Option.isNone(mechanism)) return Either.right(Option.none())
    if (Option.isNone(username) || Option.isNone(password)) {
      return Either.left(ConfigError.MissingData(
        [Option.isNone(username) ? "SASL_USERNAME" : "SASL_PASSWORD"],
        `SASL_MECHANISM is ${mechanism.value}: SASL_USERNAME and SASL_PASSWORD are required`
      ))
    }
    return Either.right(Option.some({ mechanism: mechanism.value, username: username.value, password: password.value }))
  })),
  connectionTimeout: Config.withDefault(Config.duration("CONNECTION_TIMEOUT"), Duration.seconds(3)),
  requestTimeout: Config.withDefault(Config.duration("REQUEST_TIMEOUT"), Duration.seconds(30)),
  connectAttempts: Config.withDefault(Config.integer("CONNECT_ATTEMPTS"), 5),
  shutdownTimeout: Config.withDefault(Config.duration("SHUTDOWN_TIMEOUT"), Duration.seconds(30)),
  logLevel: Config.withDefault(Config.literal("nothing", "error", "warn", "info", "debug")("LOG_LEVEL"), "warn")
}).pipe(
  Config.map(({ sasl, ...rest }): Options => ({ ...rest, sasl: Option.getOrUndefined(sasl) })),
  Config.nested("KAFKA")
)

/**
 * The adapter with its options from `Config`: by default {@link config} (the `KAFKA_*` variables); any
 * `Config.Wrap` of the options works, e.g. `KafkaJs.layerConfig({ brokers: Config.array(Config.string(), "BROKERS") })`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options> = config
): Layer.Layer<KafkaDriver.KafkaDriver, ConfigError.ConfigError> =>
  Layer.effect(KafkaDriver.KafkaDriver, Effect.flatMap(Config.unwrap(options), make))
