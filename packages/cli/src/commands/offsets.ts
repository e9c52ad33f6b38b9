/**
 * `deimos offsets <group> <topic>`: a group's committed offset, the high watermark and the lag of each partition;
 * `--reset earliest|latest` or `--skip N` moves the group's offsets (the group must not be running).
 *
 * @since 0.1.0
 */
import { DeimosConfig } from "@deimos/core"
import { KafkaDriver, KafkaJs } from "@deimos/kafka"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { CliError } from "../CliError.js"
import * as Failures from "../Failures.js"
import * as Settings from "../Settings.js"

const flags = [{ flag: "brokers", env: "KAFKA_BROKERS" }] as const

const options = {
  group: Args.text({ name: "group" }).pipe(Args.withDescription("The consumer group id.")),
  topic: Args.text({ name: "topic" }).pipe(Args.withDescription("The topic, without DEIMOS_TOPIC_PREFIX.")),
  reset: Options.choice("reset", ["earliest", "latest"]).pipe(
    Options.withDescription("Set every partition's offset to its first (earliest) or next (latest) offset."),
    Options.optional
  ),
  skip: Options.integer("skip").pipe(
    Options.withDescription(
      "Move every partition's offset forward by N (back when negative), within the log; a partition without a " +
        "committed offset counts from its first offset."
    ),
    Options.optional
  ),
  // text, parsed here: a repeated integer option of @effect/cli 0.77 refuses every value
  partition: Options.text("partition").pipe(
    Options.withDescription("Only this partition (repeatable; default: all)."),
    Options.repeated
  ),
  brokers: Settings.setting("brokers", "KAFKA_BROKERS", "Kafka brokers, comma-separated (KAFKA_* variables apply too).")
}

/**
 * One partition's row.
 *
 * @since 0.1.0
 */
export interface Row {
  readonly partition: number
  /** `-1`: nothing committed. */
  readonly committed: bigint
  readonly low: bigint
  readonly high: bigint
}

/**
 * The lag of a partition: messages after the committed offset (all of the log when nothing is committed).
 *
 * @since 0.1.0
 */
export const lagOf = (row: Row): bigint => row.high - (row.committed < 0n ? row.low : row.committed)

/**
 * Where `--reset` or `--skip` moves a partition, kept within `low`..`high`.
 *
 * @since 0.1.0
 */
export const target = (
  row: Row,
  move: { readonly reset: "earliest" | "latest" } | { readonly skip: number }
): bigint => {
  if ("reset" in move) return move.reset === "earliest" ? row.low : row.high
  const base = row.committed < 0n ? row.low : row.committed
  const next = base + BigInt(move.skip)
  return next < row.low ? row.low : next > row.high ? row.high : next
}

const table = (rows: ReadonlyArray<Row>) => {
  const header = ["PARTITION", "COMMITTED", "HIGH", "LAG"]
  const cells = rows.map((
    r
  ) => [String(r.partition), r.committed < 0n ? "-" : String(r.committed), String(r.high), String(lagOf(r))])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const fmt = (cols: ReadonlyArray<string>) => cols.map((c, i) => c.padStart(widths[i])).join("  ")
  const total = rows.reduce((n, r) => n + lagOf(r), 0n)
  return [fmt(header), ...cells.map(fmt), `total lag ${total}`].join("\n")
}

/**
 * @since 0.1.0
 */
export const command = Command.make("offsets", options, (o) =>
  Effect.gen(function*() {
    if (Option.isSome(o.reset) && Option.isSome(o.skip)) {
      return yield* new CliError({ reason: "Usage", message: "Give --reset or --skip, not both." })
    }
    const [kafka, deimos] = yield* Config.all([KafkaJs.config, DeimosConfig.config])
    return yield* Effect.gen(function*() {
      const bad = o.partition.filter((p) => !/^\d+$/.test(p))
      if (bad.length > 0) {
        return yield* new CliError({
          reason: "Usage",
          message: `--partition wants a partition number, got "${bad[0]}".`
        })
      }
      const only = o.partition.map(Number)
      const settings = yield* DeimosConfig.DeimosConfig
      const topic = settings.topicPrefix + o.topic
      const admin = yield* (yield* KafkaDriver.KafkaDriver).admin
      const read = Effect.gen(function*() {
        const ends = yield* admin.topicOffsets(topic)
        const committed = new Map(
          (yield* admin.committedOffsets(o.group, topic)).map((c) => [c.partition, BigInt(c.offset)])
        )
        const known = new Set(ends.map((e) => e.partition))
        const missing = only.filter((p) => !known.has(p))
        if (missing.length > 0) {
          return yield* new CliError({
            reason: "Usage",
            message: `${topic} has no partition ${missing.join(", ")} (it has ${[...known].sort().join(", ")}).`
          })
        }
        return ends
          .filter((e) => only.length === 0 || only.includes(e.partition))
          .map((e): Row => ({
            partition: e.partition,
            committed: committed.get(e.partition) ?? -1n,
            low: BigInt(e.low),
            high: BigInt(e.high)
          }))
          .sort((a, b) => a.partition - b.partition)
      })
      const rows = yield* read
      const move = Option.isSome(o.reset)
        ? { reset: o.reset.value }
        : Option.isSome(o.skip)
        ? { skip: o.skip.value }
        : undefined
      if (move === undefined) {
        yield* Console.log(`group ${o.group}, topic ${topic}\n${table(rows)}`)
        return
      }
      yield* admin.setOffsets(
        o.group,
        topic,
        rows.map((r) => ({ partition: r.partition, offset: String(target(r, move)) }))
      )
      yield* Console.log(
        `group ${o.group}, topic ${topic}: offsets moved (${
          "reset" in move ? `reset to ${move.reset}` : `skip ${move.skip}`
        })\n${table(yield* read)}`
      )
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.merge(KafkaJs.layer(kafka), DeimosConfig.layer(deimos)))
    )
  }).pipe(
    Settings.provide([["KAFKA_BROKERS", o.brokers]], flags),
    Failures.failed(`offsets of ${o.group} failed`)
  )).pipe(
    Command.withDescription(
      "Show a group's committed offset, high watermark and lag per partition, or move them with --reset or --skip " +
        "(the group must have no running member). Reads KAFKA_BROKERS and the KAFKA_* variables and " +
        "DEIMOS_TOPIC_PREFIX."
    )
  )
