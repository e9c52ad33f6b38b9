/**
 * Live progress of long-running commands, on standard error (standard output stays the command's data): redrawn in
 * place on a terminal, a plain line per interval otherwise (logs, pipes, CI). `DEIMOS_PROGRESS` chooses
 * (`tty`, `plain`, `off`; default: `tty` when standard error is a terminal), `DEIMOS_PROGRESS_INTERVAL` how often
 * (default 1 second on a terminal, 10 seconds otherwise).
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"

/**
 * @since 0.1.0
 */
export type Mode = "tty" | "plain" | "off"

/**
 * The progress settings, from `DEIMOS_PROGRESS` and `DEIMOS_PROGRESS_INTERVAL`.
 *
 * @since 0.1.0
 */
export const config: Config.Config<{ readonly mode: Mode; readonly interval: Duration.Duration }> = Config.all({
  mode: Config.option(Config.literal("tty", "plain", "off")("DEIMOS_PROGRESS")),
  interval: Config.option(Config.duration("DEIMOS_PROGRESS_INTERVAL"))
}).pipe(Config.map(({ interval, mode }) => {
  const m = Option.getOrElse(mode, (): Mode => process.stderr.isTTY === true ? "tty" : "plain")
  return {
    mode: m,
    interval: Option.getOrElse(interval, () => Duration.seconds(m === "tty" ? 1 : 10))
  }
}))

const write = (text: string) => Effect.sync(() => void process.stderr.write(text))

/**
 * Shows `sample`'s line every interval until the scope closes (a scoped fiber); on a terminal the line is redrawn
 * in place and left on screen at the end.
 *
 * @since 0.1.0
 */
export const show = <E, R>(
  sample: Effect.Effect<string, E, R>
): Effect.Effect<void, ConfigError.ConfigError, Scope.Scope | R> =>
  Effect.gen(function*() {
    const { interval, mode } = yield* config
    if (mode === "off") return
    const once = sample.pipe(
      Effect.flatMap((line) => write(mode === "tty" ? `\r\x1b[2K${line}` : `${line}\n`)),
      // a failed sample (a broker or database away for a moment) is shown next time
      Effect.catchAllCause((cause) => Effect.logDebug("progress sample failed", cause))
    )
    if (mode === "tty") yield* Effect.addFinalizer(() => write("\n"))
    yield* Effect.forkScoped(Effect.repeat(Effect.delay(once, interval), Schedule.forever))
  })

/**
 * A rate meter: each call with a running total answers the rate per second since the call before.
 *
 * @since 0.1.0
 */
export const rate = (): Effect.Effect<(total: number) => number> =>
  Effect.sync(() => {
    let last: { total: number; at: number } | undefined
    return (total: number) => {
      const now = Date.now()
      const r = last === undefined || now === last.at ? 0 : ((total - last.total) * 1000) / (now - last.at)
      last = { total, at: now }
      return Math.max(0, r)
    }
  })

/**
 * A rate for display, e.g. `1.2k/s`.
 *
 * @since 0.1.0
 */
export const formatRate = (perSecond: number): string =>
  perSecond >= 10_000 ?
    `${(perSecond / 1000).toFixed(0)}k/s` :
    perSecond >= 1000 ?
    `${(perSecond / 1000).toFixed(1)}k/s` :
    `${perSecond.toFixed(perSecond >= 10 ? 0 : 1)}/s`
