/**
 * `deimos poll <module>`: runs the DB pollers a module exports (`export const pollers`: an array of `Poller.Options`)
 * with `Poller.layer`, publishing to Kafka, until SIGINT/SIGTERM (a batch in flight is rolled back, its cursor
 * stays where it was).
 *
 * @since 0.1.0
 */
import { Background, DeimosConfig } from "@deimos/core"
import { KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { Database, Migrations, Poller } from "@deimos/sql"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Backends from "../Backends.js"
import { CliError } from "../CliError.js"
import * as MigrationSets from "../MigrationSets.js"
import * as Modules from "../Modules.js"
import * as Progress from "../Progress.js"
import * as Settings from "../Settings.js"

const flags = [
  { flag: "brokers", env: "KAFKA_BROKERS" },
  { flag: "database-url", env: "DATABASE_URL" },
  { flag: "registry-url", env: "SCHEMA_REGISTRY_URL" }
] as const

const options = {
  module: Args.text({ name: "module" }).pipe(
    Args.withDescription(
      "The module exporting pollers (an array of Poller.Options), relative to the working directory (a .ts module " +
        "needs node --import tsx)."
    )
  ),
  databaseUrl: Settings.setting("database-url", "DATABASE_URL", "Postgres URL (DATABASE_* variables apply too)."),
  brokers: Settings.setting(
    "brokers",
    "KAFKA_BROKERS",
    "Kafka brokers, comma-separated (KAFKA_* variables apply too)."
  ),
  format: Backends.format,
  registryUrl: Backends.registryUrl,
  migrate: Options.boolean("migrate").pipe(
    Options.withDescription("Apply the poller migrations (poll_info) first, where each poller's schema and prefix say.")
  )
}

const usage = (message: string) => new CliError({ reason: "Usage", message })

/** The module's `pollers`, each checked to look like `Poller.Options`. */
export const pollersOf = (
  file: string,
  exports: Modules.Exports
): Effect.Effect<ReadonlyArray<Poller.Options>, CliError> =>
  Effect.gen(function*() {
    const value = exports.pollers
    if (!Array.isArray(value) || value.length === 0) {
      return yield* usage(
        `${file} exports no pollers: export const pollers = [{ name, producers, mode, … }] (Poller.Options).`
      )
    }
    const names = new Set<string>()
    for (const [i, p] of (value as ReadonlyArray<unknown>).entries()) {
      const o = (typeof p === "object" && p !== null ? p : {}) as Record<string, unknown>
      const name = o.name
      const producers = o.producers
      const mode = (typeof o.mode === "object" && o.mode !== null ? o.mode : {}) as Record<string, unknown>
      const problem = typeof name !== "string" || name === ""
        ? "needs a name"
        : !Array.isArray(producers) || producers.length === 0
        ? "needs producers (RecordProducer.make values)"
        : mode.mode !== "time" && mode.mode !== "state"
        ? "needs mode { mode: \"time\" } or { mode: \"state\", query }"
        : names.has(name)
        ? `has the name ${name} of another poller (a poller's name is its row in poll_info)`
        : undefined
      if (problem !== undefined) return yield* usage(`pollers[${i}] of ${file} ${problem}.`)
      names.add(name as string)
    }
    return value as ReadonlyArray<Poller.Options>
  })

/** Rows published and refused so far by this process, per poller. */
const counts = Effect.map(Metric.snapshot, (pairs) => {
  const out = new Map<string, { published: number; invalid: number }>()
  for (const pair of pairs) {
    const name = pair.metricKey.name
    if (name !== "db_poller.published" && name !== "db_poller.invalid") continue
    const poller = pair.metricKey.tags.find((t) => t.key === "poller")?.value ?? ""
    const entry = out.get(poller) ?? { published: 0, invalid: 0 }
    const count = Number((pair.metricState as { readonly count?: number | bigint }).count ?? 0)
    out.set(poller, name === "db_poller.published" ? { ...entry, published: count } : { ...entry, invalid: count })
  }
  return out
})

/**
 * @since 0.1.0
 */
export const command = Command.make("poll", options, (o) =>
  Effect.gen(function*() {
    const exports = yield* Modules.load(o.module)
    const pollers = yield* pollersOf(o.module, exports)
    const userLayer = yield* Modules.layerOf(o.module, exports)
    // every setting read before connecting anything: a configuration mistake is reported as one
    const [database, kafka, deimos, registry] = yield* Config.all([
      Database.config,
      KafkaJs.config,
      DeimosConfig.config,
      Backends.config(o.format)
    ])
    const base = Layer.mergeAll(
      Database.layer(database),
      DeimosConfig.layer(deimos),
      Backends.layer(registry),
      KafkaProducerBackend.layer().pipe(Layer.provideMerge(KafkaJs.layer(kafka)))
    )
    // what the module's layer needs is the command's to give (unknown to the compiler)
    const context = Layer.provideMerge((userLayer ?? Layer.empty) as Layer.Layer<never, unknown>, base)

    return yield* Effect.gen(function*() {
      if (o.migrate) {
        const places = new Map(pollers.map((p) => [`${p.schema ?? ""}\u0000${p.prefix ?? ""}`, p]))
        for (const naming of places.values()) {
          const applied = yield* Migrations.run(Poller.migrations(naming), {
            table: MigrationSets.recordTable(naming)
          })
          if (applied.length > 0) yield* Effect.logInfo(`Applied ${applied.join(", ")}`)
        }
      }
      const rate = yield* Progress.rate()
      yield* Progress.show(Effect.map(counts, (byPoller) => {
        let total = 0
        const each = pollers.map((p) => {
          const c = byPoller.get(p.name) ?? { published: 0, invalid: 0 }
          total += c.published
          return `${p.name} ${c.published} published${c.invalid > 0 ? `, ${c.invalid} invalid` : ""}`
        })
        return `poll: ${total} rows published (${Progress.formatRate(rate(total))}); ${each.join("; ")}`
      }))
      yield* Effect.logInfo(`Polling with ${pollers.map((p) => p.name).join(", ")}`)
      return yield* Background.launch(Poller.layer(pollers))
    }).pipe(
      Effect.scoped,
      Effect.provide(context),
      Modules.defects(`poll ${o.module} failed`),
      Effect.mapError(Modules.failure(`poll ${o.module} failed`, flags))
    )
  }).pipe(
    Settings.provide([
      ["DATABASE_URL", o.databaseUrl],
      ["KAFKA_BROKERS", o.brokers],
      ["SCHEMA_REGISTRY_URL", o.registryUrl]
    ], flags)
  )).pipe(
    Command.withDescription(
      "Run the DB pollers a module exports (export const pollers: an array of Poller.Options; an export layer " +
        "provides what they need) until SIGINT/SIGTERM, publishing to Kafka. A .ts module needs node --import tsx " +
        "(NODE_OPTIONS=\"--import tsx\"). Reads DATABASE_URL and the DATABASE_* variables, KAFKA_BROKERS and the " +
        "KAFKA_* variables, DEIMOS_* (TOPIC_PREFIX, SCHEMA_BACKEND, PROGRESS, PROGRESS_INTERVAL, …), and " +
        "SCHEMA_REGISTRY_URL (and the other SCHEMA_REGISTRY_* variables) for avro."
    )
  )
