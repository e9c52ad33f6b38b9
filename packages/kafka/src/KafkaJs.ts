/**
 * The kafkajs adapter of the `KafkaDriver` port. kafkajs types stay inside this module.
 *
 * @since 0.1.0
 */
import type { Consumer } from "@deimos/core"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import {
  type IHeaders,
  Kafka,
  type KafkaMessage,
  logLevel as KafkaLogLevel,
  type Message,
  Partitioners,
  type SASLOptions
} from "kafkajs"
import * as KafkaDriver from "./KafkaDriver.js"
import { fromUnknown, KafkaError } from "./KafkaError.js"

/**
 * @since 0.1.0
 */
export interface Options {
  readonly brokers: ReadonlyArray<string>
  /** @default "deimos" */
  readonly clientId?: string | undefined
  /** @default false */
  readonly ssl?: boolean | undefined
  readonly sasl?: {
    readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512"
    readonly username: string
    readonly password: Redacted.Redacted
  } | undefined
  /** @default 3 seconds */
  readonly connectionTimeout?: Duration.DurationInput | undefined
  /** @default 30 seconds */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** Connection attempts (with exponential backoff from 200 ms) before a clear error. @default 5 */
  readonly connectAttempts?: number | undefined
  /** How long closing a producer or consumer may take (finish in-flight work, commit, leave). @default 30 seconds */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** kafkajs's own logs. @default "warn" */
  readonly logLevel?: "nothing" | "error" | "warn" | "info" | "debug" | undefined
}

const levels = {
  nothing: KafkaLogLevel.NOTHING,
  error: KafkaLogLevel.ERROR,
  warn: KafkaLogLevel.WARN,
  info: KafkaLogLevel.INFO,
  debug: KafkaLogLevel.DEBUG
} as const

const millis = (d: Duration.DurationInput | undefined, fallback: number) =>
  d === undefined ? fallback : Duration.toMillis(Duration.decode(d))

const toBuffer = (bytes: Uint8Array | null): Buffer | null =>
  bytes === null ? null : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

const headersOf = (headers: IHeaders | undefined): Record<string, string | Uint8Array | undefined> => {
  const out: Record<string, string | Uint8Array | undefined> = {}
  if (headers === undefined) return out
  for (const [k, v] of Object.entries(headers)) out[k] = Array.isArray(v) ? v[v.length - 1] : v
  return out
}

/** A fetched kafkajs message in the toolkit's types. */
export const toRawMessage = (topic: string, partition: number, m: KafkaMessage): Consumer.RawMessage => ({
  topic,
  partition,
  offset: m.offset,
  key: m.key,
  value: m.value,
  headers: headersOf(m.headers),
  timestamp: m.timestamp
})

interface PartitionedMessage extends Message {
  readonly partitionKey?: string | null
}

/** kafkajs's default (Java-compatible murmur2) partitioner, applied to the partition key instead of the key. */
const partitionKeyPartitioner = () => {
  const partitioner = Partitioners.DefaultPartitioner()
  return (args: Parameters<typeof partitioner>[0]) => {
    const message = args.message as PartitionedMessage
    return partitioner({
      ...args,
      message: { ...message, key: message.partitionKey ?? message.key ?? null }
    })
  }
}

/**
 * @since 0.1.0
 */
export const make = (options: Options): KafkaDriver.KafkaDriver.Service => {
  const sasl: SASLOptions | undefined = options.sasl === undefined
    ? undefined
    : {
      mechanism: options.sasl.mechanism,
      username: options.sasl.username,
      password: Redacted.value(options.sasl.password)
    } as SASLOptions
  const kafka = new Kafka({
    brokers: [...options.brokers],
    clientId: options.clientId ?? "deimos",
    ssl: options.ssl ?? false,
    ...(sasl === undefined ? {} : { sasl }),
    connectionTimeout: millis(options.connectionTimeout, 3000),
    requestTimeout: millis(options.requestTimeout, 30_000),
    logLevel: levels[options.logLevel ?? "warn"],
    retry: { retries: 2, initialRetryTime: 100 }
  })
  const attempts = options.connectAttempts ?? 5
  const shutdownTimeout = Duration.decode(options.shutdownTimeout ?? "30 seconds")
  const brokers = options.brokers.join(",")

  /** Connects with retries and backoff, then a clear error. */
  const connect = (what: string, f: () => Promise<void>) =>
    Effect.tryPromise({ try: f, catch: fromUnknown("Connect", `Cannot connect the ${what} to Kafka at ${brokers}`) })
      .pipe(
        Effect.retry({
          schedule: Schedule.exponential("200 millis"),
          times: Math.max(0, attempts - 1),
          while: (e) => e.retriable
        }),
        Effect.mapError((e) =>
          new KafkaError({
            reason: "Connect",
            retriable: e.retriable,
            message: `${e.message} (after ${attempts} attempts)`,
            cause: e.cause
          })
        )
      )

  const disconnect = (what: string, f: () => Promise<void>) =>
    Effect.tryPromise(f).pipe(
      Effect.timeout(shutdownTimeout),
      Effect.catchAll((e) => Effect.logWarning(`Disconnecting the ${what} from Kafka did not finish cleanly`, e))
    )

  const producer: KafkaDriver.KafkaDriver.Service["producer"] = (producerOptions = {}) =>
    Effect.gen(function*() {
      const p = kafka.producer({
        idempotent: producerOptions.idempotent ?? false,
        ...(producerOptions.idempotent === true ? { maxInFlightRequests: 5 } : {}),
        createPartitioner: partitionKeyPartitioner
      })
      yield* Effect.acquireRelease(connect("producer", () => p.connect()), () =>
        disconnect("producer", () => p.disconnect()))
      const acks = producerOptions.acks ?? -1
      const timeout = millis(producerOptions.timeout, 30_000)
      return {
        send: (topic, messages) =>
          Effect.tryPromise({
            try: () =>
              p.send({
                topic,
                acks,
                timeout,
                messages: messages.map((m): PartitionedMessage => ({
                  key: toBuffer(m.key),
                  value: toBuffer(m.value),
                  headers: m.headers,
                  partitionKey: m.partitionKey
                }))
              }),
            catch: fromUnknown("Produce", `Cannot send ${messages.length} messages to ${topic}`)
          }).pipe(Effect.asVoid)
      }
    })

  const consumer: KafkaDriver.KafkaDriver.Service["consumer"] = (consumerOptions) =>
    Effect.gen(function*() {
      const c = kafka.consumer({
        groupId: consumerOptions.groupId,
        sessionTimeout: millis(consumerOptions.sessionTimeout, 30_000),
        heartbeatInterval: millis(consumerOptions.heartbeatInterval, 3000),
        maxBytesPerPartition: consumerOptions.maxBytesPerPartition ?? 1024 * 1024,
        minBytes: consumerOptions.minBytes ?? 1,
        maxWaitTimeInMs: millis(consumerOptions.maxWaitTime, 5000),
        retry: { retries: 5 }
      })
      yield* Effect.acquireRelease(
        connect("consumer", async () => {
          await c.connect()
          await c.subscribe({
            topics: [...consumerOptions.topics],
            fromBeginning: consumerOptions.fromBeginning ?? true
          })
        }),
        () => disconnect("consumer", () => c.disconnect())
      )
      return {
        run: <E, R>(
          handle: (batch: KafkaDriver.Batch, control: KafkaDriver.BatchControl) => Effect.Effect<void, E, R>
        ) =>
          Effect.gen(function*() {
            const runtime = yield* Effect.runtime<R>()
            const failed = yield* Deferred.make<never, E | KafkaError>()
            let stopped = false
            yield* Effect.tryPromise({
              try: () =>
                c.run({
                  autoCommit: true,
                  autoCommitThreshold: 1,
                  eachBatchAutoResolve: false,
                  eachBatch: async (payload) => {
                    if (stopped) return
                    const { batch } = payload
                    const control: KafkaDriver.BatchControl = {
                      resolveOffset: (offset) => Effect.sync(() => payload.resolveOffset(offset)),
                      commit: Effect.tryPromise({
                        try: () => payload.commitOffsetsIfNecessary(),
                        catch: fromUnknown("Commit", `Cannot commit offsets of ${batch.topic}[${batch.partition}]`)
                      }),
                      heartbeat: Effect.tryPromise({
                        try: () => payload.heartbeat(),
                        catch: fromUnknown("Consume", "Heartbeat failed")
                      }),
                      isRunning: Effect.sync(() => payload.isRunning() && !payload.isStale()),
                      pause: Effect.sync(() => {
                        payload.pause()
                      })
                    }
                    const exit = await Runtime.runPromiseExit(runtime)(handle({
                      topic: batch.topic,
                      partition: batch.partition,
                      highWatermark: batch.highWatermark,
                      messages: batch.messages.map((m) => toRawMessage(batch.topic, batch.partition, m))
                    }, control))
                    if (Exit.isFailure(exit)) {
                      stopped = true
                      payload.pause()
                      await Runtime.runPromise(runtime)(Deferred.failCause(failed, exit.cause))
                    }
                  }
                }),
              catch: fromUnknown("Consume", `Cannot start consuming ${consumerOptions.topics.join(",")}`)
            })
            return yield* Deferred.await(failed)
          })
      }
    })

  const admin: KafkaDriver.KafkaDriver.Service["admin"] = Effect.gen(function*() {
    const a = kafka.admin()
    yield* Effect.acquireRelease(
      connect("admin client", () => a.connect()),
      () => disconnect("admin client", () => a.disconnect())
    )
    const call = <A>(what: string, f: () => Promise<A>) =>
      Effect.tryPromise({ try: f, catch: fromUnknown("Admin", what) })
    return {
      createTopic: (topic, o = {}) =>
        call(
          `Cannot create topic ${topic}`,
          () =>
            a.createTopics({
              topics: [{ topic, ...(o.partitions === undefined ? {} : { numPartitions: o.partitions }) }]
            })
        ),
      deleteTopic: (topic) => call(`Cannot delete topic ${topic}`, () => a.deleteTopics({ topics: [topic] })),
      topicOffsets: (topic) =>
        Effect.map(
          call(`Cannot read the offsets of ${topic}`, () => a.fetchTopicOffsets(topic)),
          (offsets) => offsets.map((o) => ({ partition: o.partition, low: o.low, high: o.high }))
        ),
      committedOffsets: (groupId, topic) =>
        Effect.map(
          call(`Cannot read the committed offsets of ${groupId}`, () => a.fetchOffsets({ groupId, topics: [topic] })),
          (topics) => topics.flatMap((t) => t.partitions.map((p) => ({ partition: p.partition, offset: p.offset })))
        ),
      read: (topic, partition, fromOffset, untilOffset) =>
        BigInt(fromOffset) >= BigInt(untilOffset)
          ? Effect.succeed([])
          : Effect.scoped(Effect.gen(function*() {
            const groupId = `deimos-inline-${globalThis.crypto.randomUUID()}`
            const c = kafka.consumer({ groupId, maxWaitTimeInMs: 200, retry: { retries: 2 } })
            yield* Effect.acquireRelease(
              connect("inline consumer", async () => {
                await c.connect()
                await c.subscribe({ topics: [topic], fromBeginning: true })
              }),
              () =>
                disconnect("inline consumer", async () => {
                  await c.disconnect()
                  await a.deleteGroups([groupId]).catch(() => undefined)
                })
            )
            const done = yield* Deferred.make<ReadonlyArray<Consumer.RawMessage>>()
            const out: Array<Consumer.RawMessage> = []
            const last = BigInt(untilOffset) - 1n
            const runtime = yield* Effect.runtime<never>()
            yield* call(`Cannot read ${topic}[${partition}]`, async () => {
              await c.run({
                autoCommit: false,
                eachBatch: async ({ batch }) => {
                  if (batch.partition !== partition) return
                  for (const m of batch.messages) {
                    const offset = BigInt(m.offset)
                    if (offset >= BigInt(fromOffset) && offset <= last) out.push(toRawMessage(topic, partition, m))
                    if (offset >= last) await Runtime.runPromise(runtime)(Deferred.succeed(done, out))
                  }
                }
              })
              c.seek({ topic, partition, offset: fromOffset })
            })
            return yield* Deferred.await(done)
          }))
    } satisfies KafkaDriver.Admin
  })

  return { name: "kafkajs", producer, consumer, admin }
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<KafkaDriver.KafkaDriver> =>
  Layer.sync(KafkaDriver.KafkaDriver, () => make(options))

/**
 * Reads the options from `Config`: `KAFKA_BROKERS` (comma-separated), `KAFKA_CLIENT_ID`, `KAFKA_SSL`,
 * `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD` (redacted), `KAFKA_CONNECTION_TIMEOUT`,
 * `KAFKA_REQUEST_TIMEOUT`, `KAFKA_SHUTDOWN_TIMEOUT`.
 *
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  brokers: Config.map(Config.string("BROKERS"), (s) => s.split(",").map((b) => b.trim()).filter((b) => b !== "")),
  clientId: Config.withDefault(Config.string("CLIENT_ID"), "deimos"),
  ssl: Config.withDefault(Config.boolean("SSL"), false),
  sasl: Config.option(Config.all({
    mechanism: Config.literal("plain", "scram-sha-256", "scram-sha-512")("SASL_MECHANISM"),
    username: Config.string("SASL_USERNAME"),
    password: Config.redacted("SASL_PASSWORD")
  })),
  connectionTimeout: Config.withDefault(Config.duration("CONNECTION_TIMEOUT"), Duration.seconds(3)),
  requestTimeout: Config.withDefault(Config.duration("REQUEST_TIMEOUT"), Duration.seconds(30)),
  shutdownTimeout: Config.withDefault(Config.duration("SHUTDOWN_TIMEOUT"), Duration.seconds(30))
}).pipe(
  Config.map(({ sasl, ...rest }) => ({ ...rest, sasl: Option.getOrUndefined(sasl) })),
  Config.nested("KAFKA")
)

/**
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = config
): Layer.Layer<KafkaDriver.KafkaDriver, ConfigError.ConfigError> =>
  Layer.effect(KafkaDriver.KafkaDriver, Effect.map(options, make))
