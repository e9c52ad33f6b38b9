/**
 * The development Kafka broker: speaks the Kafka wire protocol (non-flexible versions) to real clients such as
 * kafkajs and librdkafka/kcat. One node, every partition led by it; topics, logs and committed offsets in memory or
 * under a data directory. A development and test tool: the library itself works against real Kafka.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import { Storage } from "./internal/log.js"
import * as Sasl from "./internal/sasl.js"
import * as Server from "./internal/server.js"
import { KafkaBrokerError } from "./KafkaBrokerError.js"

/**
 * @since 0.1.0
 */
export interface Options {
  /** @default 9092; 0 picks a free port */
  readonly port?: number | undefined
  /** @default "127.0.0.1" */
  readonly host?: string | undefined
  /** Keep topics, logs and committed offsets here across restarts; memory only without it. */
  readonly dataDir?: string | undefined
  /** Partitions of auto-created topics. @default 3 */
  readonly partitions?: number | undefined
  /** @default true */
  readonly autoCreateTopics?: boolean | undefined
  /** Largest record batch accepted (MESSAGE_TOO_LARGE above). @default 1 MiB */
  readonly maxMessageBytes?: number | undefined
  /** Largest request frame; a larger one closes the connection. @default 100 MiB */
  readonly maxFrameBytes?: number | undefined
  /**
   * Most partitions one topic may have: CreateTopics, CreatePartitions and auto-creation above it are answered
   * INVALID_PARTITIONS (37). @default 1000
   */
  readonly maxPartitionsPerTopic?: number | undefined
  /** Most partitions of all topics together, refused the same way. @default 10000 */
  readonly maxPartitions?: number | undefined
  /**
   * Most bytes held for requests not yet wholly received, across all connections (Kafka's
   * `queued.max.request.bytes`); the connection whose bytes would pass it is closed. A frame larger than this
   * cannot be received at all. @default 256 MiB
   */
  readonly maxBufferedRequestBytes?: number | undefined
  /**
   * A connection with nothing received, sent or waiting for an answer for this long is closed, as Kafka's
   * `connections.max.idle.ms` does; clients reconnect when they need to. @default "10 minutes"
   */
  readonly connectionsMaxIdle?: Duration.DurationInput | undefined
  /**
   * TLS on the listener (PEM texts). With `ca`, every client must present a certificate signed by it (mutual TLS);
   * a handshake that fails closes that connection only. @default none (plaintext)
   */
  readonly tls?: TlsOptions | undefined
  /**
   * SASL on the listener (over TLS when `tls` is set too): a client must authenticate before any request but
   * ApiVersions, SaslHandshake and SaslAuthenticate; another request closes its connection, as Kafka does.
   * @default none
   */
  readonly sasl?: SaslOptions | undefined
}

/**
 * @since 0.1.0
 */
export interface TlsOptions {
  /** The broker's certificate chain (PEM). */
  readonly cert: string
  /** Its private key (PEM). */
  readonly key: string
  /** Clients' CA (PEM): when set, client certificates are required and checked against it. */
  readonly ca?: string | undefined
}

/**
 * @since 0.1.0
 */
export type SaslMechanism = "plain" | "scram-sha-256" | "scram-sha-512" | "oauthbearer"

/**
 * @since 0.1.0
 */
export interface SaslOptions {
  /**
   * The mechanisms offered. `oauthbearer` takes unsecured JWS tokens (`alg: none`, as Kafka's default validator)
   * with a `sub` and an `exp` in the future; the session ends at `exp`, and a client that has not re-authenticated
   * by then is disconnected at its next request.
   */
  readonly mechanisms: ReadonlyArray<SaslMechanism>
  /** The users of `plain` and the `scram-*` mechanisms. */
  readonly users: ReadonlyArray<{ readonly username: string; readonly password: string }>
}

export {
  /**
   * @since 0.1.0
   */
  KafkaBrokerError
} from "./KafkaBrokerError.js"

/**
 * The running broker, for tests: `KafkaBroker.layer({ port: 0 })` provides it.
 *
 * @since 0.1.0
 * @category tags
 */
export class KafkaBroker extends Context.Tag("@deimos/broker/KafkaBroker")<KafkaBroker, KafkaBroker.Service>() {}

/**
 * @since 0.1.0
 */
export declare namespace KafkaBroker {
  /**
   * A running broker.
   *
   * @since 0.1.0
   */
  export interface Service {
    readonly host: string
    readonly port: number
    /** `host:port`, for client `brokers` lists. */
    readonly broker: string
    /** What the broker did and holds, for benchmarks and tests. */
    readonly stats: () => Stats
  }

  /**
   * @since 0.1.0
   */
  export interface Stats {
    /** Time spent handling requests (their synchronous part). */
    readonly busyMs: number
    /** Records appended so far. */
    readonly producedRecords: number
    /** Open client connections. */
    readonly connections: number
    /** Bytes held for requests not yet wholly received, across connections. */
    readonly bufferedRequestBytes: number
    /** Fetches long-polling for data. */
    readonly waitingFetches: number
    /** Partition files open for appending. */
    readonly openLogFiles: number
  }
}

const saslCredentials = (options: SaslOptions): Effect.Effect<Sasl.Credentials, KafkaBrokerError> =>
  Effect.suspend(() => {
    const invalid = (message: string) =>
      Effect.fail(new KafkaBrokerError({ reason: "Config", message, cause: undefined }))
    if (options.mechanisms.length === 0) return invalid("SASL needs at least one mechanism")
    const needsUsers = options.mechanisms.some((m) => m !== "oauthbearer")
    if (needsUsers && options.users.length === 0) {
      return invalid(`SASL ${options.mechanisms.join(", ")} needs at least one user`)
    }
    const users = new Map<string, string>()
    for (const { password, username } of options.users) {
      if (username === "" || password === "") return invalid("a SASL user needs a name and a password")
      users.set(username, password)
    }
    return Effect.succeed(Sasl.credentials({
      mechanisms: options.mechanisms.map((m) => m.toUpperCase() as Sasl.Mechanism),
      users
    }))
  })

/**
 * Starts a broker that stops when the scope closes (connections closed, logs and offsets flushed).
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<KafkaBroker.Service, KafkaBrokerError, Scope.Scope> =>
  Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    const port = options.port ?? 9092
    // the socket callbacks log through the runtime of the caller (its logger and log level)
    const runtime = yield* Effect.runtime<never>()
    const log = (level: "info" | "warn", message: string) => {
      const effect = level === "warn" ? Effect.logWarning(message) : Effect.logDebug(message)
      Runtime.runFork(runtime)(effect.pipe(Effect.annotateLogs("service", "deimos-broker")))
    }
    const sasl = options.sasl === undefined ? undefined : yield* saslCredentials(options.sasl)
    const maxPartitionsPerTopic = options.maxPartitionsPerTopic ?? 1000
    const maxPartitions = options.maxPartitions ?? 10_000
    const storage = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          new Storage({
            dataDir: options.dataDir,
            maxPartitionsPerTopic,
            maxPartitions,
            maxOpenFiles: 128,
            warn: (message) => log("warn", message)
          }),
        catch: (cause) =>
          new KafkaBrokerError({
            reason: "LoadState",
            message: `Cannot load the Kafka broker's data from ${options.dataDir}`,
            cause
          })
      }),
      (storage) => Effect.sync(() => storage.close())
    )
    const server = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          Server.start({
            host,
            port,
            nodeId: 0,
            clusterId: "deimos-dev-cluster",
            autoCreateTopics: options.autoCreateTopics ?? true,
            defaultPartitions: options.partitions ?? 3,
            maxMessageBytes: options.maxMessageBytes ?? 1024 * 1024,
            maxFrameBytes: options.maxFrameBytes ?? 100 * 1024 * 1024,
            maxPartitionsPerTopic,
            maxPartitions,
            maxBufferedRequestBytes: options.maxBufferedRequestBytes ?? 256 * 1024 * 1024,
            // setTimeout holds at most 2^31-1 ms (24.8 days): longer is never
            connectionsMaxIdleMs: Math.min(
              2 ** 31 - 1,
              Duration.toMillis(Duration.decode(options.connectionsMaxIdle ?? "10 minutes"))
            ),
            storage,
            log,
            tls: options.tls,
            sasl
          }),
        catch: (cause) =>
          new KafkaBrokerError({ reason: "Listen", message: `Cannot start the Kafka broker on ${host}:${port}`, cause })
      }),
      // connections are destroyed, not drained, so closing is quick; bounded all the same
      (server) =>
        Effect.interruptible(Effect.promise(() => server.close())).pipe(Effect.timeout("5 seconds"), Effect.ignore)
    )
    return {
      host,
      port: server.port,
      broker: `${host}:${server.port}`,
      stats: () => ({
        busyMs: server.context.stats.busyMs,
        producedRecords: server.context.stats.producedRecords,
        ...server.load(),
        waitingFetches: server.context.waiters.size,
        openLogFiles: storage.openFiles()
      })
    }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<KafkaBroker, KafkaBrokerError> =>
  Layer.scoped(KafkaBroker, make(options))
