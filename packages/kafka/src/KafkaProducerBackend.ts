/**
 * Producer backends over the Kafka driver: `layer` sends each `publishList` batch and waits for the broker
 * (acks=all by default); `layerAsync` buffers messages and sends them in batches, retrying what the broker cannot
 * take yet, and flushes on scope close. Both cut what they send into requests of at most `maxBatchBytes`.
 *
 * @since 0.1.0
 */
import { Instrumentation, Metrics, ProducerBackend, ProducerError } from "@deimos/core"
import type * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as KafkaDriver from "./KafkaDriver.js"
import { isTooLarge, type KafkaError } from "./KafkaError.js"

/**
 * @since 0.1.0
 */
export interface Options extends KafkaDriver.ProducerOptions {
  /**
   * Largest request one send makes, in bytes of keys, values and headers (plus a small overhead per record): a call
   * with more is sent as several requests, in order. Keep it below the broker's `message.max.bytes` (1 MiB by
   * default), which bounds each partition's record batch. @default 900 KiB
   */
  readonly maxBatchBytes?: number | undefined
}

/** What a record costs in a request beyond its key, value and headers (lengths, offsets, timestamps). */
const recordOverhead = 32

const sizeOf = (message: ProducerBackend.ProducerMessage) => {
  let size = recordOverhead + (message.key?.length ?? 0) + (message.value?.length ?? 0)
  for (const name in message.headers) {
    const value = message.headers[name]
    size += name.length + (typeof value === "string" ? value.length * 3 : value.length)
  }
  return size
}

/** The messages in order, cut into requests of at most `maxBytes` (a message larger than that goes alone). */
const requestsOf = (
  messages: ReadonlyArray<ProducerBackend.ProducerMessage>,
  maxBytes: number
): ReadonlyArray<ReadonlyArray<ProducerBackend.ProducerMessage>> => {
  const out: Array<ReadonlyArray<ProducerBackend.ProducerMessage>> = []
  let from = 0
  let bytes = 0
  for (let i = 0; i < messages.length; i++) {
    const size = sizeOf(messages[i])
    if (i > from && bytes + size > maxBytes) {
      out.push(messages.slice(from, i))
      from = i
      bytes = 0
    }
    bytes += size
  }
  if (from < messages.length) out.push(from === 0 ? messages : messages.slice(from))
  return out
}

const count = (n: number) => n === 1 ? "1 message" : `${n} messages`

const megabytes = (bytes: number) => `${(bytes / 1_000_000).toFixed(2)} MB`

/** The `ProducerError` of a failed request: a single message the broker finds too large says so, with its size. */
const producerError = (
  topic: string,
  messages: ReadonlyArray<ProducerBackend.ProducerMessage>,
  unsent: number,
  error: KafkaError
): ProducerError.ProducerError => {
  const tooLarge = isTooLarge(error)
  const message = tooLarge && messages.length === 1
    ? `The message with key ${JSON.stringify(String(messages[0].rawKey ?? null))} (${
      megabytes(sizeOf(messages[0]))
    }) is larger than the broker accepts for topic ${topic} (${error.code})`
    : tooLarge
    ? `Cannot send ${
      count(messages.length)
    } to topic ${topic}: the request is larger than the broker accepts (${error.code}); lower maxBatchBytes`
    : error.message
  return new ProducerError.ProducerError({
    reason: "Send",
    producer: messages[0]?.producer ?? "unknown",
    topic,
    retriable: error.retriable,
    failedCount: unsent,
    message,
    cause: error
  })
}

/** One request: counted as published when the broker took it. */
const sendRequest = (
  producer: KafkaDriver.Producer,
  backend: string,
  topic: string,
  messages: ReadonlyArray<ProducerBackend.ProducerMessage>
): Effect.Effect<void, KafkaError> =>
  // a ProducerMessage is an OutgoingMessage (plus what the instrumentation needs): no copy on the hot path
  producer.send(topic, messages).pipe(
    Effect.zipRight(Metrics.countPublished(topic, messages.length)),
    Effect.zipRight(Instrumentation.emit({ _tag: "Produce", topic, count: messages.length, backend }))
  )

/** Messages that will not be sent: counted in `publish_error` and emitted with their payloads. */
const reportFailed = (
  backend: string,
  topic: string,
  messages: ReadonlyArray<ProducerBackend.ProducerMessage>,
  error: unknown
) =>
  Metrics.countPublishError(topic, messages.length).pipe(
    Effect.zipRight(Instrumentation.emit({
      _tag: "ProduceError",
      topic,
      backend,
      payloads: messages.map((m) => m.payload),
      error
    }))
  )

/** Sends a call's requests in order; the first refused one fails the call (the ones before it were sent). */
const sendAll = (producer: KafkaDriver.Producer, backend: string, maxBytes: number) =>
(
  topic: string,
  messages: ReadonlyArray<ProducerBackend.ProducerMessage>
): Effect.Effect<void, ProducerError.ProducerError> => {
  const requests = requestsOf(messages, maxBytes)
  const from = (i: number, sent: number): Effect.Effect<void, ProducerError.ProducerError> =>
    i >= requests.length ? Effect.void : Effect.matchEffect(sendRequest(producer, backend, topic, requests[i]), {
      onFailure: (error) => {
        const unsent = messages.slice(sent)
        return Effect.zipRight(
          reportFailed(backend, topic, unsent, error),
          Effect.fail(producerError(topic, requests[i], unsent.length, error))
        )
      },
      onSuccess: () => from(i + 1, sent + requests[i].length)
    })
  return messages.length === 0 ? Effect.void : from(0, 0)
}

/**
 * The synchronous Kafka backend: each call's requests are sent in order and acknowledged before it returns; the
 * first refused request fails the call (the ones before it were sent).
 *
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<ProducerBackend.ProducerBackend.Service, KafkaError, KafkaDriver.KafkaDriver | Scope.Scope> =>
  Effect.gen(function*() {
    const driver = yield* KafkaDriver.KafkaDriver
    const producer = yield* driver.producer(options)
    return { name: "kafka", execute: sendAll(producer, "kafka", options.maxBatchBytes ?? 900 * 1024) }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<ProducerBackend.ProducerBackend, KafkaError, KafkaDriver.KafkaDriver> =>
  Layer.scoped(ProducerBackend.ProducerBackend, make(options))

/**
 * Messages `kafkaAsync` gave up on, for `onDropped`.
 *
 * @since 0.1.0
 */
export interface Dropped {
  readonly topic: string
  readonly messages: ReadonlyArray<ProducerBackend.ProducerMessage>
  /** Why: the broker's refusal, or that the flush timeout ran out while the broker was away. */
  readonly error: ProducerError.ProducerError
}

/**
 * @since 0.1.0
 */
export interface AsyncOptions extends Options {
  /** Messages per send. @default 1000 */
  readonly maxBatchSize?: number | undefined
  /** Longest a message waits for its batch to fill. @default 100 millis */
  readonly maxLinger?: Duration.DurationInput | undefined
  /** Messages buffered before `publish` waits (back-pressure). @default 10000 */
  readonly bufferSize?: number | undefined
  /**
   * Longest the scope's close waits for buffered messages to be sent (retrying while the broker is away); what is
   * left then is dropped and reported. @default 30 seconds
   */
  readonly flushTimeout?: Duration.DurationInput | undefined
  /**
   * The waits between tries of a request the broker could not take yet (a retriable error: the broker away, a
   * leader moving). It retries until the request is sent or the scope closes and the flush timeout runs out.
   * @default exponential from 100 ms, at most 5 s apart
   */
  readonly retrySchedule?: Schedule.Schedule<unknown, ProducerError.ProducerError> | undefined
  /** Told of every message given up on (refused by the broker, or left when the flush timeout ran out). */
  readonly onDropped?: ((dropped: Dropped) => Effect.Effect<void>) | undefined
}

const End: unique symbol = Symbol("@deimos/kafka/KafkaProducerBackend/End")

interface Pending {
  readonly topic: string
  readonly message: ProducerBackend.ProducerMessage
}

const byTopic = (pending: Iterable<Pending>) => {
  const out = new Map<string, Array<ProducerBackend.ProducerMessage>>()
  for (const p of pending) {
    const list = out.get(p.topic)
    if (list === undefined) out.set(p.topic, [p.message])
    else list.push(p.message)
  }
  return out
}

/**
 * The buffered Kafka backend (Deimos's `kafka_async`): `execute` enqueues and returns; a background fiber sends
 * batches per topic, in order. A request the broker cannot take yet is tried again (`retrySchedule`) while later
 * messages wait behind it (a full buffer then makes publishers wait); one it refuses for good is dropped. `sync:
 * true` sends at once and waits. Closing the scope flushes everything buffered within `flushTimeout`. Every
 * message dropped is counted in `publish_error`, emitted as `ProduceError` with its payload, logged and handed to
 * `onDropped`; nothing else is.
 *
 * @since 0.1.0
 */
export const makeAsync = (
  options: AsyncOptions = {}
): Effect.Effect<ProducerBackend.ProducerBackend.Service, KafkaError, KafkaDriver.KafkaDriver | Scope.Scope> =>
  Effect.gen(function*() {
    const driver = yield* KafkaDriver.KafkaDriver
    const producer = yield* driver.producer(options)
    const maxBytes = options.maxBatchBytes ?? 900 * 1024
    const sendNow = sendAll(producer, "kafkaAsync", maxBytes)
    const retrySchedule = options.retrySchedule ??
      Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))
    const queue = yield* Queue.bounded<Pending | typeof End>(options.bufferSize ?? 10_000)
    const drained = yield* Deferred.make<void>()

    const drop = (
      topic: string,
      messages: ReadonlyArray<ProducerBackend.ProducerMessage>,
      error: ProducerError.ProducerError
    ) =>
      reportFailed("kafkaAsync", topic, messages, error.cause ?? error).pipe(
        Effect.zipRight(Effect.logError(`${count(messages.length)} for topic ${topic} dropped: ${error.message}`)),
        Effect.zipRight(options.onDropped === undefined ? Effect.void : options.onDropped({ topic, messages, error }))
      )

    // the requests of the group in hand and how many of them are done, for the report when the flush timeout
    // interrupts the sender
    let inHand: ReadonlyArray<readonly [string, ReadonlyArray<ProducerBackend.ProducerMessage>]> = []
    let done = 0

    /** A group's requests, topic by topic, in order; each tried again while the broker cannot take it yet. */
    const sendGroup = (group: Chunk.Chunk<Pending>) =>
      Effect.suspend(() => {
        inHand = [...byTopic(group)].flatMap(([topic, messages]) =>
          requestsOf(messages, maxBytes).map((request) => [topic, request] as const)
        )
        done = 0
        return Effect.forEach(inHand, ([topic, request]) =>
          sendRequest(producer, "kafkaAsync", topic, request).pipe(
            Effect.mapError((error) => producerError(topic, request, request.length, error)),
            Effect.retry({ schedule: retrySchedule, while: (error) => error.retriable }),
            Effect.catchAll((error) => drop(topic, request, error)),
            Effect.zipRight(Effect.sync(() => {
              done++
            }))
          ), { discard: true })
      })

    // the sender: sends until it meets the end marker, then signals
    const sender = yield* Stream.fromQueue(queue).pipe(
      Stream.takeWhile((p): p is Pending => p !== End),
      Stream.groupedWithin(options.maxBatchSize ?? 1000, options.maxLinger ?? "100 millis"),
      Stream.runForEach(sendGroup),
      Effect.ensuring(Deferred.succeed(drained, undefined)),
      Effect.forkScoped
    )

    // on scope close, before the producer disconnects: flush what is buffered within the flush timeout (a
    // finalizer is uninterruptible: the wait is made interruptible for the timeout); what is left is dropped
    const flushTimeout = Duration.decode(options.flushTimeout ?? "30 seconds")
    const dropLeft = Effect.gen(function*() {
      yield* Fiber.interrupt(sender)
      const buffered = [...yield* Queue.takeAll(queue)].filter((p): p is Pending => p !== End)
      const left = [...inHand.slice(done), ...byTopic(buffered)]
      const total = left.reduce((n, [, messages]) => n + messages.length, 0)
      yield* Effect.logError(
        `Buffered messages were not all sent within the flush timeout (${Duration.format(flushTimeout)}); ${
          count(total)
        } dropped`
      )
      yield* Effect.forEach(left, ([topic, messages]) =>
        drop(
          topic,
          messages,
          new ProducerError.ProducerError({
            reason: "Send",
            producer: messages[0]?.producer ?? "unknown",
            topic,
            retriable: true,
            failedCount: messages.length,
            message: `the flush timeout (${Duration.format(flushTimeout)}) ran out before the broker took them`
          })
        ), { discard: true })
    })
    yield* Effect.addFinalizer(() =>
      Effect.interruptible(Effect.zipRight(Queue.offer(queue, End), Deferred.await(drained))).pipe(
        Effect.timeout(flushTimeout),
        Effect.catchAll(() => dropLeft)
      )
    )
    return {
      name: "kafkaAsync",
      execute: (topic, messages, executeOptions) =>
        executeOptions?.sync === true
          ? sendNow(topic, messages)
          : Effect.asVoid(Queue.offerAll(queue, messages.map((message) => ({ topic, message }))))
    }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layerAsync = (
  options: AsyncOptions = {}
): Layer.Layer<ProducerBackend.ProducerBackend, KafkaError, KafkaDriver.KafkaDriver> =>
  Layer.scoped(ProducerBackend.ProducerBackend, makeAsync(options))
