/**
 * `deimos-broker`: runs the development Kafka broker and Schema Registry until SIGINT/SIGTERM.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { parseArgs } from "node:util"
import * as DevCluster from "./DevCluster.js"

const usage = `Usage: deimos-broker [--port 9092] [--registry-port 8081] [--data-dir DIR] [--partitions 3]
                     [--host 127.0.0.1] [--max-message-bytes 1048576] [--verbose]`

const int = (name: string, value: string | undefined, fallback: number): number => {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got "${value}"\n${usage}`)
    process.exit(2)
  }
  return n
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        port: { type: "string" },
        "registry-port": { type: "string" },
        "data-dir": { type: "string" },
        partitions: { type: "string" },
        host: { type: "string" },
        "max-message-bytes": { type: "string" },
        verbose: { type: "boolean" },
        help: { type: "boolean" }
      }
    })
  } catch (error) {
    console.error(`${String(error instanceof Error ? error.message : error)}\n${usage}`)
    process.exit(2)
  }
})()

if (values.help === true) {
  console.log(usage)
  process.exit(0)
}

const program = Effect.gen(function*() {
  // runs last, once the broker and the registry have closed
  yield* Effect.addFinalizer(() => Console.log("Stopped."))
  const cluster = yield* DevCluster.make({
    port: int("port", values.port, 9092),
    registryPort: int("registry-port", values["registry-port"], 8081),
    dataDir: values["data-dir"],
    partitions: int("partitions", values.partitions, 3),
    host: values.host ?? "127.0.0.1",
    maxMessageBytes: int("max-message-bytes", values["max-message-bytes"], 1024 * 1024)
  })
  yield* Console.log(`Kafka broker:    ${cluster.brokers.join(",")}`)
  yield* Console.log(`Schema Registry: ${cluster.registryUrl}`)
  yield* Console.log(values["data-dir"] === undefined ? "Data: in memory" : `Data: ${values["data-dir"]}`)
  return yield* Effect.never
}).pipe(
  Effect.scoped,
  Logger.withMinimumLogLevel(values.verbose === true ? LogLevel.Debug : LogLevel.Info)
)

NodeRuntime.runMain(program)
