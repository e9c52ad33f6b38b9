/**
 * Toolkit-wide settings: topic prefix, payload logging, producers disabled, error policy defaults. A required
 * service, not a default: the topic prefix decides where data goes, so a program that publishes or consumes must
 * be given its settings (`DeimosConfig.layer(...)`, `DeimosConfig.layerConfig()`), or it does not compile. A setting
 * provided only to some other layer (a producer backend's) cannot silently fall back to an unprefixed topic.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
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
  /** Retry at once instead of waiting out the backoff (unit tests under `TestClock`). @default false */
  readonly skipBackoff: boolean
}

/**
 * @since 0.1.0
 */
export const defaults: Settings = {
  topicPrefix: "",
  payloadLogLevel: "full",
  producersDisabled: false,
  reraiseErrors: false,
  backoff: { min: Duration.seconds(1), max: Duration.seconds(60), maxRetries: undefined },
  skipBackoff: false
}

/**
 * The settings in force.
 *
 * @since 0.1.0
 * @category tags
 */
export class DeimosConfig extends Context.Tag("@deimos/core/DeimosConfig")<DeimosConfig, Settings>() {}

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
  readonly skipBackoff?: boolean | undefined
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
  },
  skipBackoff: options.skipBackoff ?? defaults.skipBackoff
})

/**
 * The settings, defaults filled in: `DeimosConfig.layer()` for the defaults.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<DeimosConfig> => Layer.succeed(DeimosConfig, make(options))

/**
 * The options from `Config` (with the default provider, the environment); each has the default of {@link defaults}:
 *
 * | variable | default |
 * | --- | --- |
 * | `DEIMOS_TOPIC_PREFIX` | `""` |
 * | `DEIMOS_PAYLOAD_LOG_LEVEL` | `full` (`full`, `keys`, `count`, `headers`) |
 * | `DEIMOS_PRODUCERS_DISABLED` | `false` |
 * | `DEIMOS_RERAISE_ERRORS` | `false` |
 * | `DEIMOS_BACKOFF_MIN` | `1 second` |
 * | `DEIMOS_BACKOFF_MAX` | `60 seconds` |
 * | `DEIMOS_BACKOFF_MAX_RETRIES` | none (retry forever) |
 * | `DEIMOS_SKIP_BACKOFF` | `false` |
 *
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
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
  }),
  skipBackoff: Config.withDefault(Config.boolean("SKIP_BACKOFF"), defaults.skipBackoff)
}).pipe(Config.nested("DEIMOS"))

/**
 * The settings from `Config`: by default {@link config} (the `DEIMOS_*` variables); any `Config.Wrap` of the options
 * works, e.g. `DeimosConfig.layerConfig({ topicPrefix: Config.string("ENV_PREFIX") })`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options> = config
): Layer.Layer<DeimosConfig, ConfigError.ConfigError> =>
  Layer.effect(DeimosConfig, Effect.map(Config.unwrap(options), make))
