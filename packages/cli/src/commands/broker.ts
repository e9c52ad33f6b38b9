/**
 * `deimos broker`: the development Kafka broker and Schema Registry in this process, until SIGINT/SIGTERM.
 *
 * @since 0.1.0
 */
import { KafkaBroker, SchemaRegistry } from "@deimos/broker"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as path from "node:path"
import { CliError } from "../CliError.js"
import * as Progress from "../Progress.js"
import * as Settings from "../Settings.js"

const options = {
  port: Settings.integer("port", "DEIMOS_BROKER_PORT", 9092, "Kafka port (0: a free port)."),
  registryPort: Settings.integer(
    "registry-port",
    "DEIMOS_REGISTRY_PORT",
    8081,
    "Schema Registry port (0: a free port)."
  ),
  host: Options.text("host").pipe(
    Options.withDescription("Address to listen on and advertise. Env DEIMOS_BROKER_HOST; default 127.0.0.1."),
    Options.withFallbackConfig(Config.withDefault(Config.string("DEIMOS_BROKER_HOST"), "127.0.0.1"))
  ),
  dataDir: Settings.text(
    "data-dir",
    "DEIMOS_BROKER_DATA_DIR",
    "Keep logs, offsets and schemas in this directory (default: in memory)."
  ),
  partitions: Settings.integer("partitions", "DEIMOS_BROKER_PARTITIONS", 3, "Partitions of auto-created topics."),
  maxMessageBytes: Settings.integer(
    "max-message-bytes",
    "DEIMOS_BROKER_MAX_MESSAGE_BYTES",
    1024 * 1024,
    "Largest record batch a partition accepts."
  )
}

/**
 * @since 0.1.0
 */
export const command = Command.make("broker", options, (o) =>
  Effect.gen(function*() {
    const dataDir = Option.getOrUndefined(o.dataDir)
    const kafka = yield* KafkaBroker.make({
      port: o.port,
      host: o.host,
      partitions: o.partitions,
      maxMessageBytes: o.maxMessageBytes,
      dataDir: dataDir === undefined ? undefined : path.join(dataDir, "kafka")
    })
    const registry = yield* SchemaRegistry.make({
      port: o.registryPort,
      host: o.host,
      dataDir: dataDir === undefined ? undefined : path.join(dataDir, "registry")
    })
    // runs last, once the broker and the registry have closed
    yield* Effect.addFinalizer(() => Console.error("Stopped."))
    yield* Console.log(`Kafka broker:    ${kafka.broker}`)
    yield* Console.log(`Schema Registry: ${registry.url}`)
    yield* Console.log(dataDir === undefined ? "Data: in memory" : `Data: ${dataDir}`)
    const produced = yield* Progress.rate()
    yield* Progress.show(Effect.sync(() => {
      const stats = kafka.stats()
      return `broker: ${stats.producedRecords} records (${
        Progress.formatRate(produced(stats.producedRecords))
      }), ${stats.connections} connections, ${stats.waitingFetches} waiting fetches`
    }))
    return yield* Effect.never
  }).pipe(
    Effect.mapError((error) => new CliError({ reason: "Failed", message: error.message, cause: error })),
    Effect.scoped
  )).pipe(
    Command.withDescription(
      "Run the development Kafka broker and Schema Registry in this process until SIGINT/SIGTERM. Also reads " +
        "DEIMOS_PROGRESS (tty|plain|off) and DEIMOS_PROGRESS_INTERVAL."
    )
  )
