/**
 * Toolkit-wide settings: topic prefix, payload logging, producers disabled, error policy defaults.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"

/**
 * How much of each payload is logged when producing and consuming.
 *
 * @since 0.1.0
 */
export type PayloadLogLevel = "full" | "keys" | "count" | "headers"

/**
 * The retry schedule of the consumer error policy: exponential from `min` to `max`.
 *
 * @since 0.1.0
 */
export interface Backoff {
  /** @default 1 second */
  readonly min: Duration.Duration
  /** @default 60 seconds */
  readonly max: Duration.Duration
  /** Retries before a retried error becomes fatal; `undefined` retries forever. @default undefined */
  readonly maxRetries: number | undefined
}

/**
 * @since 0.1.0
 */
export interface Settings {
  /** Prepended to every topic and registry subject. @default "" */
  readonly topicPrefix: string
  /** @default "full" */
  readonly payloadLogLevel: PayloadLogLevel
  /** Disables every producer. @default false */
  readonly producersDisabled: boolean
  /** Retry every handler error instead of swallowing it. @default false */
  readonly reraiseErrors: boolean
  readonly backoff: Backoff
}

/**
 * @since 0.1.0
 */
export const defaults: Settings = {
  topicPrefix: "",
  payloadLogLevel: "full",
  producersDisabled: false,
  reraiseErrors: false,
  backoff: { min: Duration.seconds(1), max: Duration.seconds(60), maxRetries: undefined }
}

/**
 * The settings in force. A `Context.Reference`: without a layer, the defaults apply.
 *
 * @since 0.1.0
 * @category tags
 */
export class DeimosConfig extends Context.Reference<DeimosConfig>()("@deimos/core/DeimosConfig", {
  defaultValue: (): Settings => defaults
}) {}

/**
 * Partial settings, as given to {@link layer}.
 *
 * @since 0.1.0
 */
export interface Options {
  readonly topicPrefix?: string | undefined
  readonly payloadLogLevel?: PayloadLogLevel | undefined
  readonly producersDisabled?: boolean | undefined
  readonly reraiseErrors?: boolean | undefined
  readonly backoff?: {
    readonly min?: Duration.DurationInput | undefined
    readonly max?: Duration.DurationInput | undefined
    readonly maxRetries?: number | undefined
  } | undefined
}

/**
 * Fills the defaults in.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Settings => ({
  topicPrefix: options.topicPrefix ?? defaults.topicPrefix,
  payloadLogLevel: options.payloadLogLevel ?? defaults.payloadLogLevel,
  producersDisabled: options.producersDisabled ?? defaults.producersDisabled,
  reraiseErrors: options.reraiseErrors ?? defaults.reraiseErrors,
  backoff: {
    min: options.backoff?.min === undefined ? defaults.backoff.min : Duration.decode(options.backoff.min),
    max: options.backoff?.max === undefined ? defaults.backoff.max : Duration.decode(options.backoff.max),
    maxRetries: options.backoff?.maxRetries ?? defaults.backoff.maxRetries
  }
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<never> => Layer.succeed(DeimosConfig, make(options))

/**
 * Reads the settings from `Config`: `DEIMOS_TOPIC_PREFIX`, `DEIMOS_PAYLOAD_LOG_LEVEL`,
 * `DEIMOS_PRODUCERS_DISABLED`, `DEIMOS_RERAISE_ERRORS`, `DEIMOS_BACKOFF_MIN`, `DEIMOS_BACKOFF_MAX`,
 * `DEIMOS_BACKOFF_MAX_RETRIES` (with the default `ConfigProvider`, from the environment).
 *
 * @since 0.1.0
 */
export const config: Config.Config<Settings> = Config.all({
  topicPrefix: Config.withDefault(Config.string("TOPIC_PREFIX"), defaults.topicPrefix),
  payloadLogLevel: Config.withDefault(
    Config.literal("full", "keys", "count", "headers")("PAYLOAD_LOG_LEVEL"),
    defaults.payloadLogLevel
  ),
  producersDisabled: Config.withDefault(Config.boolean("PRODUCERS_DISABLED"), defaults.producersDisabled),
  reraiseErrors: Config.withDefault(Config.boolean("RERAISE_ERRORS"), defaults.reraiseErrors),
  backoff: Config.all({
    min: Config.withDefault(Config.duration("BACKOFF_MIN"), defaults.backoff.min),
    max: Config.withDefault(Config.duration("BACKOFF_MAX"), defaults.backoff.max),
    maxRetries: Config.map(
      Config.option(Config.integer("BACKOFF_MAX_RETRIES")),
      (o) => o._tag === "Some" ? o.value : undefined
    )
  })
}).pipe(Config.nested("DEIMOS"))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  settings: Config.Config<Settings> = config
): Layer.Layer<never, ConfigError.ConfigError> => Layer.effect(DeimosConfig, settings)
