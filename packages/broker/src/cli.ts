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
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import * as DevCluster from "./DevCluster.js"

const usage = `Usage: deimos-broker [--port 9092] [--registry-port 8081] [--data-dir DIR] [--partitions 3]
                     [--host 127.0.0.1] [--max-message-bytes 1048576] [--verbose]
                     [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]
                     [--sasl plain|scram-sha-256|scram-sha-512|oauthbearer]... [--user NAME:PASSWORD]...
                     [--registry-user NAME:PASSWORD]... [--registry-tls]`

const fail = (message: string): never => {
  console.error(`${message}\n${usage}`)
  process.exit(2)
}

const readPem = (name: string, file: string | undefined): string | undefined => {
  if (file === undefined) return undefined
  try {
    return readFileSync(file, "utf8")
  } catch (error) {
    return fail(`--${name}: cannot read ${file} (${error instanceof Error ? error.message : String(error)})`)
  }
}

const usersOf = (name: string, values: ReadonlyArray<string> | undefined) =>
  (values ?? []).map((entry) => {
    const colon = entry.indexOf(":")
    if (colon <= 0 || colon === entry.length - 1) fail(`--${name} must be NAME:PASSWORD`)
    return { username: entry.slice(0, colon), password: entry.slice(colon + 1) }
  })

const saslMechanisms = ["plain", "scram-sha-256", "scram-sha-512", "oauthbearer"] as const

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
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "tls-ca": { type: "string" },
        sasl: { type: "string", multiple: true },
        user: { type: "string", multiple: true },
        "registry-user": { type: "string", multiple: true },
        "registry-tls": { type: "boolean" },
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

const cert = readPem("tls-cert", values["tls-cert"])
const key = readPem("tls-key", values["tls-key"])
const ca = readPem("tls-ca", values["tls-ca"])
if ((cert === undefined) !== (key === undefined)) fail("--tls-cert and --tls-key go together")
if (ca !== undefined && cert === undefined) fail("--tls-ca needs --tls-cert and --tls-key")
const tls = cert === undefined || key === undefined ? undefined : { cert, key, ca }
if (values["registry-tls"] === true && tls === undefined) fail("--registry-tls needs --tls-cert and --tls-key")
const mechanisms = (values.sasl ?? []).map((m) => {
  const mechanism = saslMechanisms.find((known) => known === m.toLowerCase())
  return mechanism ?? fail(`--sasl must be one of ${saslMechanisms.join(", ")}, got "${m}"`)
})
const users = usersOf("user", values.user)
if (mechanisms.length === 0 && users.length > 0) fail("--user needs --sasl")
const registryUsers = usersOf("registry-user", values["registry-user"])

const program = Effect.gen(function*() {
  // runs last, once the broker and the registry have closed
  yield* Effect.addFinalizer(() => Console.log("Stopped."))
  const cluster = yield* DevCluster.make({
    port: int("port", values.port, 9092),
    registryPort: int("registry-port", values["registry-port"], 8081),
    dataDir: values["data-dir"],
    partitions: int("partitions", values.partitions, 3),
    host: values.host ?? "127.0.0.1",
    maxMessageBytes: int("max-message-bytes", values["max-message-bytes"], 1024 * 1024),
    tls,
    sasl: mechanisms.length === 0 ? undefined : { mechanisms, users },
    registryUsers: registryUsers.length === 0 ? undefined : registryUsers,
    registryTls: values["registry-tls"] === true
  })
  const security = [
    tls === undefined ? "plaintext" : tls.ca === undefined ? "TLS" : "mutual TLS",
    ...(mechanisms.length === 0 ? [] : [`SASL ${mechanisms.join(", ")}`])
  ].join(", ")
  yield* Console.log(`Kafka broker:    ${cluster.brokers.join(",")} (${security})`)
  yield* Console.log(`Schema Registry: ${cluster.registryUrl}`)
  yield* Console.log(values["data-dir"] === undefined ? "Data: in memory" : `Data: ${values["data-dir"]}`)
  return yield* Effect.never
}).pipe(
  Effect.scoped,
  Logger.withMinimumLogLevel(values.verbose === true ? LogLevel.Debug : LogLevel.Info)
)

NodeRuntime.runMain(program)
