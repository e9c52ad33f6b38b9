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
 * TLS settings. PEM texts inline (`ca`, `cert`, `key`) or read from files when the first client connects
 * (`caFile`, `certFile`, `keyFile`; a file wins over the inline text). Without `ca`/`caFile` the system's CAs are
 * trusted.
 *
 * @since 0.1.0
 */
export interface TlsOptions {
  /** CA certificates (PEM) trusted instead of the system's: a private CA. */
  readonly ca?: string | ReadonlyArray<string> | undefined
  /** A PEM file of CA certificates, instead of `ca`. */
  readonly caFile?: string | undefined
  /** The client certificate chain (PEM), for mutual TLS; needs `key`. */
  readonly cert?: string | undefined
  /** A PEM file of the client certificate, instead of `cert`. */
  readonly certFile?: string | undefined
  /** The client certificate's private key (PEM). */
  readonly key?: Redacted.Redacted<string> | undefined
  /** A PEM file of the private key, instead of `key`. */
  readonly keyFile?: string | undefined
  /** The passphrase of an encrypted key. */
  readonly keyPassword?: Redacted.Redacted<string> | undefined
  /** The name the broker's certificate must be for (SNI), when it is not the host in `brokers`. */
  readonly servername?: string | undefined
  /** Check the broker's certificate; `false` only against a development broker. @default true */
  readonly rejectUnauthorized?: boolean | undefined
}

/**
 * An OAUTHBEARER token, as the token provider gives it.
 *
 * @since 0.1.0
 */
export interface OAuthBearerToken {
  readonly value: Redacted.Redacted<string>
  /** When it expires (a `Date` or epoch milliseconds): it is replaced before then. */
  readonly expiresAt: Date | number
  /** SASL extensions sent with it (KIP-342), e.g. `logicalCluster` and `identityPoolId` for Confluent Cloud. */
  readonly extensions?: Readonly<Record<string, string>> | undefined
}

/**
 * SASL authentication:
 *
 * - `plain`, `scram-sha-256`, `scram-sha-512`: a username and a password.
 * - `oauthbearer`: `token` is an Effect that gets a token (from an identity provider, or AWS's MSK IAM signer). The
 *   token is reused until it is within `refreshBefore` of its expiry (at most half its lifetime), then a new one is
 *   asked for at the next connection or re-authentication (kafkajs re-authenticates before the session the broker
 *   granted ends). A token the broker refuses is dropped and the connection tried once more with a new one.
 * - `aws`: kafkajs's `AWS` mechanism (credentials signed by the broker's gateway). AWS MSK's IAM access does not
 *   use it: MSK speaks `AWS_MSK_IAM` (not built into kafkajs) or OAUTHBEARER with a token from
 *   `aws-msk-iam-sasl-signer-js` — use `oauthbearer` for MSK (see the README).
 *
 * @since 0.1.0
 */
export type SaslOptions =
  | {
    readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512"
    readonly username: string
    readonly password: Redacted.Redacted<string>
  }
  | {
    readonly mechanism: "oauthbearer"
    readonly token: Effect.Effect<OAuthBearerToken, unknown>
    readonly refreshBefore?: Duration.DurationInput | undefined
  }
  | {
    readonly mechanism: "aws"
    readonly authorizationIdentity: string
    readonly accessKeyId: string
    readonly secretAccessKey: Redacted.Redacted<string>
    readonly sessionToken?: Redacted.Redacted<string> | undefined
  }

/**
 * @since 0.1.0
 */
export interface Options {
  /** `host:port` of one or more brokers. */
  readonly brokers: ReadonlyArray<string>
  /** @default "deimos" */
  readonly clientId?: string | undefined
  /**
   * TLS: `true` trusts the system's CAs; {@link TlsOptions} for a private CA, a client certificate (mutual TLS), the
   * server name or (development only) no verification. @default false
   */
  readonly ssl?: boolean | TlsOptions | undefined
  /** SASL authentication ({@link SaslOptions}); secrets stay `Redacted` until kafkajs needs them. @default none */
  readonly sasl?: SaslOptions | undefined
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

const optional = <A>(config: Config.Config<A>) => Config.map(Config.option(config), Option.getOrUndefined)

/** TLS from `KAFKA_SSL*`: any of the CA, certificate or key settings turns it on. */
const sslConfig: Config.Config<boolean | TlsOptions> = Config.all({
  enabled: Config.withDefault(Config.boolean("SSL"), false),
  ca: optional(Config.string("SSL_CA")),
  caFile: optional(Config.string("SSL_CA_FILE")),
  cert: optional(Config.string("SSL_CERT")),
  certFile: optional(Config.string("SSL_CERT_FILE")),
  key: optional(Config.redacted("SSL_KEY")),
  keyFile: optional(Config.string("SSL_KEY_FILE")),
  keyPassword: optional(Config.redacted("SSL_KEY_PASSWORD")),
  servername: optional(Config.string("SSL_SERVERNAME")),
  rejectUnauthorized: optional(Config.boolean("SSL_REJECT_UNAUTHORIZED"))
}).pipe(Config.map(({ enabled, ...tls }): boolean | TlsOptions => {
  const set = Object.values(tls).some((v) => v !== undefined)
  return set ? tls : enabled
}))

/**
 * The options from `Config` (with the default provider, the environment): `KAFKA_BROKERS` (comma-separated),
 * `KAFKA_CLIENT_ID`, `KAFKA_SSL` (system CAs), `KAFKA_SSL_CA` / `KAFKA_SSL_CA_FILE`, `KAFKA_SSL_CERT` /
 * `KAFKA_SSL_CERT_FILE`, `KAFKA_SSL_KEY` (redacted) / `KAFKA_SSL_KEY_FILE`, `KAFKA_SSL_KEY_PASSWORD` (redacted),
 * `KAFKA_SSL_SERVERNAME`, `KAFKA_SSL_REJECT_UNAUTHORIZED` (any `KAFKA_SSL_*` turns TLS on),
 * `KAFKA_SASL_MECHANISM` (`plain`, `scram-sha-256`, `scram-sha-512`), `KAFKA_SASL_USERNAME`,
 * `KAFKA_SASL_PASSWORD` (redacted), `KAFKA_CONNECTION_TIMEOUT`, `KAFKA_REQUEST_TIMEOUT`,
 * `KAFKA_CONNECT_ATTEMPTS`, `KAFKA_SHUTDOWN_TIMEOUT`, `KAFKA_LOG_LEVEL`. SASL is on when
 * `KAFKA_SASL_MECHANISM` is set. OAUTHBEARER and AWS take an Effect or credentials from code: pass `sasl` in a
 * `Config.Wrap` (e.g. `{ ...config-fields, sasl: Config.succeed({ mechanism: "oauthbearer", token }) }`).
 *
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  brokers: Config.map(Config.string("BROKERS"), (s) => s.split(",").map((b) => b.trim()).filter((b) => b !== "")),
  clientId: Config.withDefault(Config.string("CLIENT_ID"), "deimos"),
  ssl: sslConfig,
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
    return Either.right(Option.some<SaslOptions>({
      mechanism: mechanism.value,
      username: username.value,
      password: password.value
    }))
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
