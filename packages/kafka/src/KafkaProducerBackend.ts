/**
 * Producer backends over the Kafka driver: `layer` sends each `publishList` batch and waits for the broker
 * (acks=all by default); `layerAsync` buffers messages and sends them in batches, flushing on scope close.
 *
 * @since 0.1.0
 */
import { Instrumentation, Metrics, ProducerBackend, ProducerError } from "@deimos/core"
import type * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as KafkaDriver from "./KafkaDriver.js"
import type { KafkaError } from "./KafkaError.js"

/**
 * @since 0.1.0
 */
export interface Options extends KafkaDriver.ProducerOptions {}

const sendWithMetrics = (
  producer: KafkaDriver.Producer,
  backend: string,
  topic: string,
  messages: ReadonlyArray<ProducerBackend.ProducerMessage>
): Effect.Effect<void, ProducerError.ProducerError> =>
  // a ProducerMessage is an OutgoingMessage (plus what the instrumentation needs): no copy on the hot path
  producer.send(topic, messages).pipe(
    Effect.zipRight(Metrics.countPublished(topic, messages.length)),
    Effect.zipRight(Instrumentation.emit({ _tag: "Produce", topic, count: messages.length, backend })),
    Effect.catchAll((error: KafkaError) =>
      Metrics.countPublishError(topic, messages.length).pipe(
        Effect.zipRight(Instrumentation.emit({
          _tag: "ProduceError",
          topic,
          backend,
          payloads: messages.map((m) => m.payload),
          error
        })),
        Effect.zipRight(Effect.fail(
          new ProducerError.ProducerError({
            reason: "Send",
            producer: messages[0]?.producer ?? "unknown",
            topic,
            retriable: error.retriable,
            failedCount: messages.length,
            message: error.message,
            cause: error
          })
        ))
      )
    )
  )

/**
 * The synchronous Kafka backend.
 *
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<ProducerBackend.ProducerBackend.Service, KafkaError, KafkaDriver.KafkaDriver | Scope.Scope> =>
  Effect.gen(function*() {
    const driver = yield* KafkaDriver.KafkaDriver
    const producer = yield* driver.producer(options)
    return {
      name: "kafka",
      execute: (topic, messages) => sendWithMetrics(producer, "kafka", topic, messages)
    }
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
 * @since 0.1.0
 */
export interface AsyncOptions extends Options {
  /** Messages per send. @default 1000 */
  readonly maxBatchSize?: number | undefined
  /** Longest a message waits for its batch to fill. @default 100 millis */
  readonly maxLinger?: Duration.DurationInput | undefined
  /** Messages buffered before `publish` waits (back-pressure). @default 10000 */
  readonly bufferSize?: number | undefined
  /** Longest the scope's close waits for buffered messages to be sent. @default 30 seconds */
  readonly flushTimeout?: Duration.DurationInput | undefined
}

const End: unique symbol = Symbol("@deimos/kafka/KafkaProducerBackend/End")

interface Pending {
  readonly topic: string
  readonly message: ProducerBackend.ProducerMessage
}

/**
 * The buffered Kafka backend (Deimos's `kafka_async`): `execute` enqueues and returns; a background fiber sends
 * batches per topic. `sync: true` sends at once and waits. Closing the scope flushes everything buffered. Send
 * failures of buffered messages are logged, counted and emitted as `ProduceError` with their payloads.
 *
 * @since 0.1.0
 */
export const makeAsync = (
  options: AsyncOptions = {}
): Effect.Effect<ProducerBackend.ProducerBackend.Service, KafkaError, KafkaDriver.KafkaDriver | Scope.Scope> =>
  Effect.gen(function*() {
    const driver = yield* KafkaDriver.KafkaDriver
    const producer = yield* driver.producer(options)
    const queue = yield* Queue.bounded<Pending | typeof End>(options.bufferSize ?? 10_000)
    const drained = yield* Deferred.make<void>()
    const sendGroup = (group: Chunk.Chunk<Pending>) => {
      const byTopic = new Map<string, Array<ProducerBackend.ProducerMessage>>()
      for (const p of group) {
        const list = byTopic.get(p.topic)
        if (list === undefined) byTopic.set(p.topic, [p.message])
        else list.push(p.message)
      }
      return Effect.forEach(
        byTopic,
        ([topic, messages]) =>
          sendWithMetrics(producer, "kafkaAsync", topic, messages).pipe(
            Effect.catchAll((error) => Effect.logError("Buffered messages could not be sent", error))
          ),
        { discard: true }
      )
    }
    // the sender: sends until it meets the end marker, then signals
    yield* Stream.fromQueue(queue).pipe(
      Stream.takeWhile((p): p is Pending => p !== End),
      Stream.groupedWithin(options.maxBatchSize ?? 1000, options.maxLinger ?? "100 millis"),
      Stream.runForEach(sendGroup),
      Effect.ensuring(Deferred.succeed(drained, undefined)),
      Effect.forkScoped
    )
    // on scope close, before the sender is interrupted and the producer disconnects: flush what is buffered,
    // within the flush timeout (a finalizer is uninterruptible: the wait is made interruptible for the timeout)
    const flushTimeout = Duration.decode(options.flushTimeout ?? "30 seconds")
    yield* Effect.addFinalizer(() =>
      Effect.interruptible(Effect.zipRight(Queue.offer(queue, End), Deferred.await(drained))).pipe(
        Effect.timeout(flushTimeout),
        Effect.catchAll(() =>
          Effect.flatMap(Queue.size(queue), (left) =>
            Effect.logError(
              `Buffered messages were not all sent within the flush timeout (${Duration.format(flushTimeout)}); ${
                Math.max(0, left - 1)
              } still buffered are dropped`
            ))
        )
      )
    )
    return {
      name: "kafkaAsync",
      execute: (topic, messages, executeOptions) =>
        executeOptions?.sync === true
          ? sendWithMetrics(producer, "kafkaAsync", topic, messages)
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
