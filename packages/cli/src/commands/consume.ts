/**
 * `deimos consume <module>`: runs the consumer definitions a module exports (`Consumer.make`, `Checkpoint.make`,
 * `RecordConsumer.make` values, or arrays of them) as Kafka group members with `Consumers.layer` and the lag
 * reporter, until SIGINT/SIGTERM (the members finish the message in hand, commit and leave their groups).
 *
 * @since 0.1.0
 */
import { Background, Consumer, DeimosConfig } from "@deimos/core"
import { Consumers, KafkaJs } from "@deimos/kafka"
import { Database } from "@deimos/sql"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Backends from "../Backends.js"
import { CliError } from "../CliError.js"
import * as Modules from "../Modules.js"
import * as Progress from "../Progress.js"
import * as Settings from "../Settings.js"

const flags = [
  { flag: "brokers", env: "KAFKA_BROKERS" },
  { flag: "database-url", env: "DATABASE_URL" },
  { flag: "registry-url", env: "SCHEMA_REGISTRY_URL" },
  { flag: "lag-interval", env: "DEIMOS_LAG_INTERVAL" }
] as const

const options = {
  module: Args.text({ name: "module" }).pipe(
    Args.withDescription(
      "The module exporting the consumers, relative to the working directory (a .ts module needs node --import tsx)."
    )
  ),
  brokers: Settings.setting(
    "brokers",
    "KAFKA_BROKERS",
    "Kafka brokers, comma-separated (KAFKA_* variables apply too)."
  ),
  databaseUrl: Settings.setting(
    "database-url",
    "DATABASE_URL",
    "Postgres URL: when given, the handlers get a Database (checkpoints and record consumers need one; DATABASE_* " +
      "variables apply too)."
  ),
  format: Backends.format,
  registryUrl: Backends.registryUrl,
  lagInterval: Settings.setting(
    "lag-interval",
    "DEIMOS_LAG_INTERVAL",
    "How often the consumer_lag gauge (and the progress line's lag) is measured, e.g. \"5 seconds\" (the default)."
  )
}

/** The consumer definitions among a module's exports (arrays of them included), each once, in export order. */
export const consumersOf = (exports: Modules.Exports): ReadonlyArray<Consumer.Any> => {
  const found: Array<Consumer.Any> = []
  const add = (value: unknown) => {
    if (isConsumer(value) && !found.includes(value)) found.push(value)
  }
  for (const value of Object.values(exports)) {
    if (Array.isArray(value)) value.forEach(add)
    else add(value)
  }
  return found
}

/** Whether a value is a consumer definition: what `Consumer.make` (and the definitions built on it) answers. */
const isConsumer = (u: unknown): u is Consumer.Any => typeof u === "object" && u !== null && Consumer.TypeId in u

/** A consumer that counts what its handler handled (messages, or the payloads of its batches). */
const counted = (consumer: Consumer.Any, count: (n: number) => void): Consumer.Any =>
  consumer.delivery === "inlineBatch"
    ? {
      ...consumer,
      handleBatch: (payloads: ReadonlyArray<unknown>, metadata: Consumer.BatchMetadata<unknown>) =>
        Effect.tap(consumer.handleBatch(payloads, metadata), () => Effect.sync(() => count(payloads.length)))
    }
    : {
      ...consumer,
      handle: (payload: unknown, metadata: Consumer.Metadata<unknown>) =>
        Effect.tap(consumer.handle(payload, metadata), () => Effect.sync(() => count(1)))
    }

/** The lag last measured per `group\u0000topic`: the sum of the `consumer_lag` gauge over partitions. */
const lags = Effect.map(Metric.snapshot, (pairs) => {
  const out = new Map<string, number>()
  for (const pair of pairs) {
    if (pair.metricKey.name !== "consumer_lag") continue
    const tag = (key: string) => pair.metricKey.tags.find((t) => t.key === key)?.value ?? ""
    const state = pair.metricState as { readonly value?: number }
    const key = `${tag("consumer_group")}\u0000${tag("topic")}`
    out.set(key, (out.get(key) ?? 0) + Number(state.value ?? 0))
  }
  return out
})

/**
 * @since 0.1.0
 */
export const command = Command.make("consume", options, (o) =>
  Effect.gen(function*() {
    const exports = yield* Modules.load(o.module)
    const found = consumersOf(exports)
    if (found.length === 0) {
      return yield* new CliError({
        reason: "Usage",
        message: `${o.module} exports no consumer definitions: export the values of Consumer.make, Checkpoint.make ` +
          "or RecordConsumer.make (or an array of them)."
      })
    }
    const userLayer = yield* Modules.layerOf(o.module, exports)
    // every setting read before connecting anything: a configuration mistake is reported as one
    const [kafka, deimos, registry, lagInterval, databaseUrl] = yield* Config.all([
      KafkaJs.config,
      DeimosConfig.config,
      Backends.config(o.format),
      Config.withDefault(Config.duration("DEIMOS_LAG_INTERVAL"), Duration.seconds(5)),
      Config.option(Config.string("DATABASE_URL"))
    ])
    const database = Option.isSome(databaseUrl) ? yield* Database.config : undefined

    const handled = new Map<string, number>()
    const consumers = found.map((c) => counted(c, (n) => handled.set(c.name, (handled.get(c.name) ?? 0) + n)))
    const enabled = found.filter((c) => c.disabled !== true)
    const base = Layer.mergeAll(
      KafkaJs.layer(kafka),
      DeimosConfig.layer(deimos),
      Backends.layer(registry),
      database === undefined ? Layer.empty : Database.layer(database)
    )
    // what the module's layer needs is the command's to give, what it gives the handlers': neither is known to the
    // compiler, so the handlers are taken to need nothing (a service missing at run time is a defect, exit 1)
    const context = Layer.provideMerge((userLayer ?? Layer.empty) as Layer.Layer<never, unknown>, base)
    const runnable = consumers as unknown as ReadonlyArray<Consumer.Consumer<unknown, unknown, unknown, never, unknown>>

    return yield* Effect.gen(function*() {
      const rate = yield* Progress.rate()
      yield* Progress.show(Effect.map(lags, (lag) => {
        const total = [...handled.values()].reduce((a, b) => a + b, 0)
        const each = enabled.map((c) => {
          const measured = lag.get(`${c.groupId}\u0000${deimos.topicPrefix ?? ""}${c.topic}`)
          return `${c.name} ${handled.get(c.name) ?? 0} handled, lag ${measured ?? "?"}`
        })
        return `consume: ${total} handled (${Progress.formatRate(rate(total))}); ${each.join("; ")}`
      }))
      const disabled = found.filter((c) => c.disabled === true).map((c) => c.name)
      yield* Effect.logInfo(
        `Consuming with ${enabled.map((c) => `${c.name} (${c.groupId} on ${c.topic})`).join(", ")}` +
          (disabled.length > 0 ? `; disabled: ${disabled.join(", ")}` : "")
      )
      return yield* Background.launch(Consumers.layer(runnable, { lagInterval }))
    }).pipe(
      Effect.scoped,
      Effect.provide(context),
      Modules.defects(`consume ${o.module} failed`),
      Effect.mapError(Modules.failure(`consume ${o.module} failed`, flags))
    )
  }).pipe(
    Settings.provide([
      ["KAFKA_BROKERS", o.brokers],
      ["DATABASE_URL", o.databaseUrl],
      ["SCHEMA_REGISTRY_URL", o.registryUrl],
      ["DEIMOS_LAG_INTERVAL", o.lagInterval]
    ], flags)
  )).pipe(
    Command.withDescription(
      "Run the consumers a module exports until SIGINT/SIGTERM: every export that is a consumer definition " +
        "(Consumer.make, Checkpoint.make, RecordConsumer.make, or an array of them); an export layer provides what " +
        "the handlers need. A .ts module needs node --import tsx (NODE_OPTIONS=\"--import tsx\"). Reads KAFKA_BROKERS " +
        "and the KAFKA_* variables, DEIMOS_* (TOPIC_PREFIX, SCHEMA_BACKEND, LAG_INTERVAL, PROGRESS, " +
        "PROGRESS_INTERVAL, …), SCHEMA_REGISTRY_URL (and the other SCHEMA_REGISTRY_* variables) for avro, and " +
        "DATABASE_URL (and the DATABASE_* variables) when the handlers need a Database."
    )
  )
