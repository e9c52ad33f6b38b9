/**
 * Configuration of the commands: flags override environment variables. A command declares its flags with the
 * variable each stands for (`setting`), then runs its work under `provide`, so every `Config` the toolkit's layers
 * read (`KafkaJs.config`, `Database.config`, `OutboxRelay.config`, …) sees the flag's value where one was given and
 * the environment otherwise. A missing or invalid variable becomes a `CliError` naming the variable and its flag.
 *
 * @since 0.1.0
 */
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { CliError } from "./CliError.js"

/**
 * A flag standing for an environment variable.
 *
 * @since 0.1.0
 */
export interface Setting {
  readonly flag: string
  readonly env: string
}

/**
 * An optional text flag for the variable `env`; its help says which variable it overrides.
 *
 * @since 0.1.0
 */
export const setting = (flag: string, env: string, description: string): Options.Options<Option.Option<string>> =>
  Options.text(flag).pipe(Options.withDescription(`${description} Overrides ${env}.`), Options.optional)

/**
 * Runs `effect` with the flags given (`[env, value]`) in front of the configuration provider in place (the
 * environment by default), and turns configuration errors
 * into `CliError`s that name the variable and the flag (`flags`: every flag of the command, for the message).
 *
 * @since 0.1.0
 */
export const provide = (
  values: ReadonlyArray<readonly [env: string, value: Option.Option<string>]>,
  flags: ReadonlyArray<Setting> = []
) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, ConfigError.ConfigError> | CliError, R> => {
  const given = new Map(values.flatMap(([env, value]) => Option.isSome(value) ? [[env, value.value] as const] : []))
  const all = [...flags, ...values.map(([env]) => ({ env, flag: "" }))]
  // the flags in front of the provider in place (the environment, by default)
  return Effect.configProviderWith((current) =>
    Effect.withConfigProvider(
      effect,
      ConfigProvider.fromMap(given, { pathDelim: "_" }).pipe(ConfigProvider.orElse(() => current))
    )
  ).pipe(
    Effect.catchIf(
      (e): e is Extract<E, ConfigError.ConfigError> => ConfigError.isConfigError(e),
      (e) => Effect.fail(fromConfigError(e, all))
    )
  ) as Effect.Effect<A, Exclude<E, ConfigError.ConfigError> | CliError, R>
}

/** The leaves of a configuration error: missing or invalid variables. */
const leaves = (error: ConfigError.ConfigError): ReadonlyArray<ConfigError.ConfigError> => {
  switch (error._op) {
    case "And":
    case "Or":
      return [...leaves(error.left), ...leaves(error.right)]
    default:
      return [error]
  }
}

/**
 * A configuration error as a `CliError` of reason `Config`: each variable missing or invalid, with the flag that
 * stands for it.
 *
 * @since 0.1.0
 */
export const fromConfigError = (error: ConfigError.ConfigError, flags: ReadonlyArray<Setting> = []): CliError => {
  const lines = [
    ...new Set(
      leaves(error).map((leaf) => {
        const env = "path" in leaf ? leaf.path.join("_") : ""
        const flag = flags.find((f) => f.env === env && f.flag !== "")?.flag
        const fix = flag === undefined ? `set ${env}` : `set ${env} or pass --${flag}`
        return leaf._op === "MissingData"
          ? `${env} is not set: ${fix}.`
          : `${env} is invalid (${"message" in leaf ? leaf.message : "bad value"}): ${fix}.`
      })
    )
  ]
  return new CliError({ reason: "Config", message: lines.join("\n"), cause: error })
}

/**
 * An integer flag with an environment variable behind it and a default.
 *
 * @since 0.1.0
 */
export const integer = (flag: string, env: string, fallback: number, description: string): Options.Options<number> =>
  Options.integer(flag).pipe(
    Options.withDescription(`${description} Env ${env}; default ${fallback}.`),
    Options.withFallbackConfig(Config.withDefault(Config.integer(env), fallback))
  )

/**
 * An optional text flag with an environment variable behind it, read by the command itself.
 *
 * @since 0.1.0
 */
export const text = (flag: string, env: string, description: string): Options.Options<Option.Option<string>> =>
  Options.text(flag).pipe(
    Options.withDescription(`${description} Env ${env}.`),
    Options.withFallbackConfig(Config.option(Config.string(env))),
    Options.map((value) => typeof value === "string" ? Option.some(value) : value)
  )
