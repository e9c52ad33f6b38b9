/** The kafkajs adapter of the driver port. kafkajs types stay in this file. */
import type { ConsumerProcessor } from "@deimos/core"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import {
  type EachBatchPayload,
  type IHeaders,
  Kafka,
  type KafkaMessage,
  type LogEntry,
  logLevel as KafkaLogLevel,
  type Message,
  Partitioners
} from "kafkajs"
import type * as KafkaDriver from "../KafkaDriver.js"
import { KafkaError } from "../KafkaError.js"
import type { SaslOptions, TlsOptions } from "../KafkaJs.js"
import { fromKafkaJs } from "./kafkaJsErrors.js"
import { murmur2, murmur2Text, partitionOf } from "./murmur2.js"
import * as Security from "./security.js"

/** The adapter's options; documented on `KafkaJs.Options`. */
export interface Options {
  readonly brokers: ReadonlyArray<string>
  readonly clientId?: string | undefined
  readonly ssl?: boolean | TlsOptions | undefined
  readonly sasl?: SaslOptions | undefined
  readonly connectionTimeout?: Duration.DurationInput | undefined
  readonly requestTimeout?: Duration.DurationInput | undefined
  readonly connectAttempts?: number | undefined
  readonly shutdownTimeout?: Duration.DurationInput | undefined
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
  bytes === null ? null : Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

const noHeaders: Readonly<Record<string, string | Uint8Array | undefined>> = Object.freeze({})

const headersOf = (headers: IHeaders | undefined): Readonly<Record<string, string | Uint8Array | undefined>> => {
  if (headers === undefined) return noHeaders
  let out: Record<string, string | Uint8Array | undefined> | undefined
  for (const k in headers) {
    const v = headers[k]
    out ??= {}
    out[k] = Array.isArray(v) ? v[v.length - 1] : v
  }
  return out ?? noHeaders
}

/** A fetched kafkajs message in the toolkit's types. */
export const toRawMessage = (topic: string, partition: number, m: KafkaMessage): ConsumerProcessor.RawMessage => ({
  topic,
  partition,
  offset: m.offset,
  key: m.key,
  value: m.value,
  headers: headersOf(m.headers),
  timestamp: m.timestamp
})

/** What reaches kafkajs: our outgoing messages, whose `partitionKey` only our partitioner reads. */
type PartitionedMessage = Message & { readonly partitionKey?: string | null | undefined }

/**
 * Partitions as kafkajs's default partitioner and the Java client do (murmur2 of the bytes, positive hash modulo the
 * partition count: the same key lands in the same partition as with a Java producer), applied to the partition key,
 * else the key; keyless messages go round robin (kafkajs's partitioner). The hash is the toolkit's own 32-bit
 * murmur2 (`internal/murmur2.ts`), which gives kafkajs's results without its 64-bit `Long` arithmetic.
 */
const partitionKeyPartitioner = () => {
  const roundRobin = Partitioners.DefaultPartitioner()
  return (args: Parameters<typeof roundRobin>[0]): number => {
    const message = args.message as PartitionedMessage
    if (message.partition !== null && message.partition !== undefined) return message.partition
    const count = args.partitionMetadata.length
    const partitionKey = message.partitionKey
    if (partitionKey !== null && partitionKey !== undefined) return partitionOf(murmur2Text(partitionKey), count)
    const key = message.key
    if (key !== null && key !== undefined) {
      return partitionOf(typeof key === "string" ? murmur2Text(key) : murmur2(key), count)
    }
    return roundRobin(args)
  }
}

/** Header values as kafkajs takes them: strings, and bytes (dead letters keep received bytes) as `Buffer`s. */
const kafkaHeaders = (headers: Readonly<Record<string, string | Uint8Array>>): IHeaders => {
  let out: Record<string, string | Buffer> | undefined
  for (const k in headers) {
    const v = headers[k]
    if (typeof v === "string") continue
    out ??= { ...headers } as Record<string, string | Buffer>
    out[k] = toBuffer(v)!
  }
  return out ?? (headers as IHeaders)
}

/**
 * The messages as kafkajs takes them: objects with only what kafkajs reads. kafkajs copies each message with an
 * object spread when it builds its record (`Record({ ...message, … })`), so a message with the toolkit's extra
 * fields (raw key, payload, producer) costs that many more properties per record; headers are left out when there
 * are none (kafkajs's default). Keys and values are `Buffer`s already (what the toolkit's backends produce) or
 * wrapped without a byte copy.
 */
const toKafkaMessages = (messages: ReadonlyArray<KafkaDriver.OutgoingMessage>): Array<PartitionedMessage> => {
  const out = new Array<PartitionedMessage>(messages.length)
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]
    const key = toBuffer(m.key)
    const value = toBuffer(m.value)
    let empty = true
    for (const _ in m.headers) {
      empty = false
      break
    }
    out[i] = empty
      ? { key, value, partitionKey: m.partitionKey }
      : { key, value, partitionKey: m.partitionKey, headers: kafkaHeaders(m.headers) }
  }
  return out
}

/** kafkajs logs go to Effect's logger (its level and annotations), at or above `logLevel`. */
const logCreator = (runtime: Runtime.Runtime<never>) => () => (entry: LogEntry) => {
  const { logger: _logger, message, timestamp: _timestamp, ...extra } = entry.log
  // kafkajs's connection logs every error response (a rebalance included) at ERROR, and the error then reaches
  // the caller, which reports it if it matters: those go to DEBUG
  const level = entry.namespace === "Connection" && message.startsWith("Response ")
    ? KafkaLogLevel.DEBUG
    : entry.level
  const log = level <= KafkaLogLevel.ERROR
    ? Effect.logError(message)
    : level === KafkaLogLevel.WARN
    ? Effect.logWarning(message)
    : level === KafkaLogLevel.INFO
    ? Effect.logInfo(message)
    : Effect.logDebug(message)
  Runtime.runFork(runtime)(log.pipe(Effect.annotateLogs({ ...extra, kafkajs: entry.namespace })))
}

/**
 * Whether the member must rejoin its group: set by the first commit or heartbeat the coordinator refuses because it
 * no longer knows the membership, kept for the member (not the batch: the other batches of the same fetch belong
 * to the old membership too, and handling them would only make duplicates), cleared when the member has joined
 * again.
 */
interface Membership {
  rejoin: unknown
}

const rejoinTypes = new Set(["UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION", "REBALANCE_IN_PROGRESS", "NOT_COORDINATOR"])

const connectionLost = new Set(["KafkaJSConnectionClosedError", "KafkaJSConnectionError"])

/**
 * The failures of a commit or heartbeat after which the member must rejoin before handling more: the coordinator's
 * answers that it no longer honours the membership (kafkajs rejoins on them), and a lost connection to it (after a
 * broker restart the membership is gone, and the next batch would only find that out at its first commit).
 */
const needsRejoin = (cause: unknown): boolean => {
  const error = cause as { readonly type?: unknown; readonly name?: unknown } | undefined
  return (typeof error?.type === "string" && rejoinTypes.has(error.type)) ||
    (typeof error?.name === "string" && connectionLost.has(error.name))
}

interface Work {
  readonly batch: KafkaDriver.Batch
  readonly control: KafkaDriver.BatchControl
  readonly done: Deferred.Deferred<void>
}

/** Builds the adapter; the runtime is where kafkajs's logs and callbacks run. */
export const make = (options: Options, runtime: Runtime.Runtime<never>): KafkaDriver.KafkaDriver.Service => {
  const tokens = options.sasl?.mechanism === "oauthbearer"
    ? Security.tokenCache(options.sasl.token, options.sasl.refreshBefore)
    : undefined
  const sasl = Security.saslOf(options.sasl, tokens, runtime)
  // built when the first client connects: certificate and key files are read then
  let client: Kafka | undefined
  const kafkaClient: Effect.Effect<Kafka, KafkaError> = Effect.suspend(() =>
    client !== undefined ? Effect.succeed(client) : Effect.map(Security.tlsOf(options.ssl), (ssl) => {
      client ??= new Kafka({
        brokers: [...options.brokers],
        clientId: options.clientId ?? "deimos",
        ssl,
        ...(sasl === undefined ? {} : { sasl }),
        connectionTimeout: millis(options.connectionTimeout, 3000),
        requestTimeout: millis(options.requestTimeout, 30_000),
        logLevel: levels[options.logLevel ?? "warn"],
        logCreator: logCreator(runtime),
        retry: { retries: 2, initialRetryTime: 100 }
      })
      return client
    })
  )
  const attempts = Math.max(1, options.connectAttempts ?? 5)
  const shutdownTimeout = Duration.decode(options.shutdownTimeout ?? "30 seconds")
  const brokers = options.brokers.join(",")

  /** Connects with retries and exponential backoff, then a clear error. */
  const connect = (what: string, f: () => Promise<void>) =>
    Effect.suspend(() => {
      let made = 0
      let refreshed = false
      return Effect.tryPromise({
        try: () => {
          made++
          return f()
        },
        catch: (error) => {
          const failure = Security.authenticationFailure(error, options.sasl)
          const e = fromKafkaJs("Connect", `Cannot connect the ${what} to Kafka at ${brokers}`)(error)
          // an authentication failure is not retried (but for a refused OAUTHBEARER token, once, with a new one)
          return failure === undefined ? e : new KafkaError({
            reason: "Connect",
            retriable: false,
            code: failure.code,
            setting: failure.setting,
            message: `Cannot connect the ${what} to Kafka at ${brokers}: ${failure.what} (check ${failure.setting}): ${
              e.message.slice(`Cannot connect the ${what} to Kafka at ${brokers}: `.length)
            }`,
            cause: error
          })
        }
      }).pipe(
        Effect.retry({
          schedule: Schedule.exponential("200 millis"),
          times: attempts - 1,
          while: (e) => {
            if (e.retriable) return true
            if (tokens === undefined || e.code !== "SASL_AUTHENTICATION_FAILED" || refreshed) return false
            refreshed = true
            tokens.invalidate()
            return true
          }
        }),
        Effect.mapError((e) =>
          new KafkaError({
            reason: "Connect",
            retriable: e.retriable,
            code: e.code,
            setting: e.setting,
            message: `${e.message} (after ${made} attempt${made === 1 ? "" : "s"})`,
            cause: e.cause
          })
        )
      )
    })

  // releases run uninterruptibly: the wait is made interruptible so that the timeout can end it
  const disconnect = (what: string, f: () => Promise<void>) =>
    Effect.interruptible(Effect.tryPromise(f)).pipe(
      Effect.timeout(shutdownTimeout),
      Effect.catchAll((e) => Effect.logWarning(`Disconnecting the ${what} from Kafka did not finish cleanly`, e))
    )

  const producer: KafkaDriver.KafkaDriver.Service["producer"] = (producerOptions = {}) =>
    Effect.gen(function*() {
      const idempotent = producerOptions.idempotent ?? false
      const kafka = yield* kafkaClient
      const p = kafka.producer({
        idempotent,
        // kafkajs keeps order with an idempotent producer only with at most one request in flight
        ...(idempotent ? { maxInFlightRequests: 1 } : {}),
        createPartitioner: partitionKeyPartitioner
      })
      yield* Effect.acquireRelease(
        connect("producer", () => p.connect()),
        () => disconnect("producer", () => p.disconnect())
      )
      // an idempotent producer needs acks=all
      const acks = idempotent ? -1 : producerOptions.acks ?? -1
      const timeout = millis(producerOptions.timeout, 30_000)
      return {
        send: (topic, messages) =>
          Effect.tryPromise({
            try: () =>
              p.send({
                topic,
                acks,
                timeout,
                messages: toKafkaMessages(messages)
              }),
            catch: fromKafkaJs(
              "Produce",
              `Cannot send ${messages.length === 1 ? "1 message" : `${messages.length} messages`} to topic ${topic}`
            )
          }).pipe(Effect.asVoid)
      }
    })

  const consumer: KafkaDriver.KafkaDriver.Service["consumer"] = (consumerOptions) =>
    Effect.gen(function*() {
      const topics = consumerOptions.topics.join(",")
      const kafka = yield* kafkaClient
      const c = kafka.consumer({
        groupId: consumerOptions.groupId,
        sessionTimeout: millis(consumerOptions.sessionTimeout, 30_000),
        heartbeatInterval: millis(consumerOptions.heartbeatInterval, 3000),
        maxBytesPerPartition: consumerOptions.maxBytesPerPartition ?? 1024 * 1024,
        minBytes: consumerOptions.minBytes ?? 1,
        // the longest a fetch waits for data; also how long a stop waits for the fetch in flight
        maxWaitTimeInMs: millis(consumerOptions.maxWaitTime, 500),
        retry: { retries: 8 }
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

      const run = <E, R>(
        handle: (batch: KafkaDriver.Batch, control: KafkaDriver.BatchControl) => Effect.Effect<void, E, R>
      ): Effect.Effect<never, E | KafkaError, R> =>
        Effect.gen(function*() {
          // one batch at a time: kafkajs awaits the callback, so it fetches nothing more meanwhile
          const inbox = yield* Queue.bounded<Work>(1)
          const crashed = yield* Deferred.make<never, KafkaError>()
          let stopping = false
          // completes once the member stops: a handler waiting to retry gives up at once (see core Consumer.Stopping)
          const stopped = Deferred.unsafeMake<void>(FiberId.none)
          const stop = () => {
            stopping = true
            Deferred.unsafeDone(stopped, Exit.void)
          }
          const removeCrashListener = c.on(c.events.CRASH, (event) => {
            if (event.payload.restart) return
            Runtime.runFork(runtime)(Deferred.fail(
              crashed,
              fromKafkaJs("Consume", `The consumer of ${topics} (group ${consumerOptions.groupId}) stopped`)(
                event.payload.error
              )
            ))
          })
          yield* Effect.addFinalizer(() => Effect.sync(removeCrashListener))

          const membership: Membership = { rejoin: undefined }
          const removeJoinListener = c.on(c.events.GROUP_JOIN, () => {
            membership.rejoin = undefined
          })
          yield* Effect.addFinalizer(() => Effect.sync(removeJoinListener))

          const controlOf = (payload: EachBatchPayload): KafkaDriver.BatchControl => {
            const { batch } = payload
            let resolved: string | undefined
            // a membership the coordinator no longer honours: stop this batch, let kafkajs rejoin afterwards
            const noteRejoin = (cause: unknown) => {
              if (membership.rejoin === undefined && needsRejoin(cause)) membership.rejoin = cause
            }
            return {
              resolveOffset: (offset) =>
                Effect.sync(() => {
                  resolved = offset
                  payload.resolveOffset(offset)
                }),
              commit: Effect.suspend(() => {
                if (resolved === undefined) return Effect.void
                const offset = (BigInt(resolved) + 1n).toString()
                return Effect.tryPromise({
                  try: () =>
                    payload.commitOffsetsIfNecessary({
                      topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset }] }]
                    }),
                  catch: (cause) => {
                    noteRejoin(cause)
                    return fromKafkaJs(
                      "Commit",
                      `Cannot commit offset ${offset} of ${batch.topic}[${batch.partition}]`
                    )(
                      cause
                    )
                  }
                })
              }),
              heartbeat: Effect.tryPromise({
                try: () => payload.heartbeat(),
                catch: (cause) => {
                  noteRejoin(cause)
                  return fromKafkaJs("Consume", "Heartbeat failed")(cause)
                }
              }),
              isRunning: () =>
                !stopping && membership.rejoin === undefined && payload.isRunning() && !payload.isStale(),
              pause: Effect.sync(() => {
                payload.pause()
              }),
              stopping: Deferred.await(stopped)
            }
          }

          // the accepted bridge: kafkajs needs a Promise; the batch is handed to the member's fiber and kafkajs
          // waits until that fiber is done with it
          const eachBatch = async (payload: EachBatchPayload) => {
            if (stopping) return
            // a batch of a membership the coordinator forgot: not handled (it comes again after the rejoin)
            if (membership.rejoin !== undefined) throw membership.rejoin
            const { batch } = payload
            const messages = new Array<ConsumerProcessor.RawMessage>(batch.messages.length)
            for (let i = 0; i < batch.messages.length; i++) {
              messages[i] = toRawMessage(batch.topic, batch.partition, batch.messages[i])
            }
            const done = Deferred.unsafeMake<void>(FiberId.none)
            const work: Work = {
              batch: {
                topic: batch.topic,
                partition: batch.partition,
                highWatermark: batch.highWatermark,
                messages
              },
              control: controlOf(payload),
              done
            }
            // a shut-down inbox (the member stopped) interrupts the offer: the batch is left unresolved
            await Runtime.runPromiseExit(runtime)(Effect.zipRight(Queue.offer(inbox, work), Deferred.await(done)))
            // kafkajs rejoins the group when the batch fails with the coordinator's error
            if (membership.rejoin !== undefined && !stopping) throw membership.rejoin
          }

          yield* Effect.tryPromise({
            try: () => c.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch }),
            catch: fromKafkaJs("Consume", `Cannot start consuming ${topics}`)
          })

          const handleWork = (work: Work) =>
            Effect.uninterruptibleMask((restore) =>
              Effect.gen(function*() {
                // not a child fiber: an interrupt signal would reach a child at once, and the batch in hand must
                // get its chance to finish; it is always awaited or interrupted below
                const fiber = yield* Effect.forkDaemon(restore(handle(work.batch, work.control)))
                const exit = yield* Effect.exit(restore(Fiber.await(fiber)))
                if (Exit.isSuccess(exit)) return yield* exit.value
                // interrupted while the batch is in hand: stop taking messages, give it the shutdown timeout
                stop()
                // interruptible, or the timeout could not end the wait inside this uninterruptible region
                const finished = yield* Effect.interruptible(Fiber.await(fiber)).pipe(
                  Effect.timeout(shutdownTimeout),
                  Effect.option
                )
                if (finished._tag === "None") {
                  yield* Effect.logWarning(
                    `The batch in hand did not finish within the shutdown timeout (${
                      Duration.format(shutdownTimeout)
                    }); interrupting it`
                  )
                  yield* Fiber.interrupt(fiber)
                }
                return yield* Effect.interrupt
              }).pipe(
                Effect.tapErrorCause(() => Effect.sync(stop)),
                Effect.ensuring(Deferred.succeed(work.done, undefined))
              )
            )

          const loop = Effect.forever(Effect.flatMap(Queue.take(inbox), handleWork))
          return yield* Effect.raceFirst(loop, Deferred.await(crashed)).pipe(
            Effect.ensuring(Effect.suspend(() => {
              stop()
              return Queue.shutdown(inbox)
            }))
          )
        }).pipe(Effect.scoped)

      return { run }
    })

  const admin: KafkaDriver.KafkaDriver.Service["admin"] = Effect.gen(function*() {
    const kafka = yield* kafkaClient
    const a = kafka.admin()
    yield* Effect.acquireRelease(
      connect("admin client", () => a.connect()),
      () => disconnect("admin client", () => a.disconnect())
    )
    const call = <A>(what: string, f: () => Promise<A>) =>
      Effect.tryPromise({ try: f, catch: fromKafkaJs("Admin", what) })

    /**
     * kafkajs cannot be assigned partitions by hand: a throwaway group (deleted afterwards, nothing committed)
     * joins, seeks each partition to its start and collects until every range is done. A range ends at the
     * partition's high watermark, and is done once the fetched position passes its last offset even when that
     * offset is never delivered (a transaction marker, a compacted record): kafkajs reports the batch's last
     * offset, filtered records included, when the batch ends.
     */
    const read = (topic: string, ranges: ReadonlyArray<KafkaDriver.OffsetRange>) =>
      Effect.gen(function*() {
        const asked = ranges.filter((r) => BigInt(r.from) < BigInt(r.until))
        if (asked.length === 0) return []
        const offsets = yield* call(`Cannot read the offsets of ${topic}`, () => a.fetchTopicOffsets(topic))
        const ends = new Map(offsets.map((o) => [o.partition, { low: BigInt(o.low), high: BigInt(o.high) }]))
        const wanted = asked.flatMap((r) => {
          const end = ends.get(r.partition)
          if (end === undefined) return []
          const from = BigInt(r.from) > end.low ? BigInt(r.from) : end.low
          const until = BigInt(r.until) < end.high ? BigInt(r.until) : end.high
          return from < until ? [{ partition: r.partition, from, last: until - 1n }] : []
        })
        if (wanted.length === 0) return []
        return yield* Effect.scoped(Effect.gen(function*() {
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
          const done = yield* Deferred.make<void, KafkaError>()
          const byPartition = new Map(
            wanted.map((r) => [r.partition, {
              ...r,
              // the next offset to collect: a batch fetched before the seek took effect is not collected twice
              next: r.from,
              out: [] as Array<ConsumerProcessor.RawMessage>,
              finished: false
            }])
          )
          let open = byPartition.size
          const skip = (partition: number) => c.pause([{ topic, partitions: [partition] }])
          // the batch's last offset, records kafkajs filtered out included
          const reached = (partition: number, lastOffset: string) => {
            const range = byPartition.get(partition)
            if (range === undefined) return skip(partition)
            if (range.finished || BigInt(lastOffset) < range.last) return
            range.finished = true
            skip(partition)
            if (--open === 0) Deferred.unsafeDone(done, Exit.void)
          }
          const listeners = [
            c.on(c.events.END_BATCH_PROCESS, (event) => reached(event.payload.partition, event.payload.lastOffset)),
            c.on(c.events.CRASH, (event) => {
              Deferred.unsafeDone(done, Exit.fail(fromKafkaJs("Consume", `Cannot read ${topic}`)(event.payload.error)))
            })
          ]
          yield* Effect.addFinalizer(() => Effect.sync(() => listeners.forEach((remove) => remove())))
          yield* call(`Cannot read ${topic}`, async () => {
            await c.run({
              autoCommit: false,
              eachBatch: async ({ batch }) => {
                const range = byPartition.get(batch.partition)
                if (range === undefined || range.finished) return
                for (const m of batch.messages) {
                  const offset = BigInt(m.offset)
                  if (offset > range.last) break
                  if (offset < range.next) continue
                  range.out.push(toRawMessage(topic, batch.partition, m))
                  range.next = offset + 1n
                }
              }
            })
            for (const r of wanted) c.seek({ topic, partition: r.partition, offset: r.from.toString() })
          })
          yield* Deferred.await(done)
          return wanted.flatMap((r) => byPartition.get(r.partition)!.out)
        }))
      })

    /**
     * As kafkajs's `admin.setOffsets`, with a short fetch wait (its own waits 5 seconds): a member of the group's
     * own joins (once the group is found empty), seeks each partition (a seek commits), and leaves after its first
     * fetch.
     */
    const setOffsets = (
      groupId: string,
      topic: string,
      offsets: ReadonlyArray<{ readonly partition: number; readonly offset: string }>
    ) =>
      offsets.length === 0 ? Effect.void : Effect.scoped(Effect.gen(function*() {
        const what = `Cannot set the offsets of ${groupId} on ${topic}`
        const c = kafka.consumer({ groupId, maxWaitTimeInMs: 100, retry: { retries: 2 } })
        yield* Effect.acquireRelease(
          connect("offsets consumer", () => c.connect()),
          () => disconnect("offsets consumer", () => c.disconnect())
        )
        const description = yield* call(what, () => c.describeGroup())
        if (description.state !== "Empty" && description.state !== "Dead") {
          return yield* new KafkaError({
            reason: "Admin",
            retriable: false,
            message: `${what}: the group has running members (state ${description.state}); stop them first`
          })
        }
        yield* call(what, () =>
          new Promise<void>((resolve, reject) => {
            c.on(c.events.FETCH, () => void c.stop().then(resolve, reject))
            c.subscribe({ topics: [topic], fromBeginning: true })
              .then(() => c.run({ eachBatchAutoResolve: false, eachBatch: async () => {} }))
              .then(() => {
                // nothing is read: the seeks are what this member is for
                c.pause([{ topic }])
                for (const o of offsets) c.seek({ topic, partition: o.partition, offset: o.offset })
              })
              .catch(reject)
          }))
      }))

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
      setOffsets,
      read
    } satisfies KafkaDriver.Admin
  })

  return { name: "kafkajs", producer, consumer, admin }
}
