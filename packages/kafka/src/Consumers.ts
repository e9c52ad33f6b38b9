/**
 * Runs consumer definitions as Kafka group members. Each definition runs `maxConcurrency` members, each in its own
 * fiber; batches go through the core's `processMessage` / `processBatch` (decode → handler → error policy) and
 * offsets are committed per REFERENCE §2: after each message for `message` delivery, after each batch for `batch`
 * and `inlineBatch`. A fatal error stops the consumer without committing and fails `run` with a
 * `ConsumerFatalError` naming consumer, topic, partition and offset. Closing the scope is the graceful shutdown:
 * the in-flight message or batch finishes (a `batch` stops early at a message boundary), handled offsets are
 * committed, the member leaves the group, the connection closes.
 *
 * @since 0.1.0
 */
import { Consumer, type ConsumerError, type SchemaBackend } from "@deimos/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as KafkaDriver from "./KafkaDriver.js"
import type { KafkaError } from "./KafkaError.js"
import * as LagReporter from "./LagReporter.js"

/**
 * Handles one fetched batch for a consumer, with heartbeats while it runs.
 *
 * @since 0.1.0
 */
export const handleBatch = <A, K, E, R>(
  consumer: Consumer.Consumer<A, K, E, R>,
  batch: KafkaDriver.Batch,
  control: KafkaDriver.BatchControl
): Effect.Effect<void, ConsumerError.ConsumerFatalError | KafkaError, R | SchemaBackend.SchemaBackend> => {
  const heartbeatEvery = Duration.decode(consumer.heartbeatInterval ?? "3 seconds")
  // a commit refused during a rebalance is not fatal: the driver rejoins, and what was not committed is delivered
  // again (at least once)
  const commit = control.commit.pipe(
    Effect.catchAll((error) =>
      Effect.logWarning("Offset commit failed; uncommitted messages may be delivered again", error).pipe(
        Effect.annotateLogs({ consumer: consumer.name, topic: batch.topic, partition: batch.partition })
      )
    )
  )
  const body: Effect.Effect<void, ConsumerError.ConsumerFatalError | KafkaError, R | SchemaBackend.SchemaBackend> =
    consumer.delivery === "inlineBatch"
      ? Effect.gen(function*() {
        yield* Consumer.processBatch(consumer, batch.messages)
        const last = batch.messages[batch.messages.length - 1]
        if (last !== undefined) yield* control.resolveOffset(last.offset)
        yield* commit
      })
      : Effect.gen(function*() {
        let handled = 0
        for (const message of batch.messages) {
          if (!(yield* control.isRunning)) break
          yield* Consumer.processMessage(consumer, message)
          yield* control.resolveOffset(message.offset)
          handled++
          if (consumer.delivery === "message") yield* commit
        }
        if (handled > 0) yield* commit
      })
  return Effect.scoped(
    Effect.gen(function*() {
      // keep the group membership alive during long handlers
      yield* control.heartbeat.pipe(
        Effect.ignore,
        Effect.repeat(Schedule.spaced(heartbeatEvery)),
        Effect.delay(heartbeatEvery),
        Effect.forkScoped
      )
      yield* body
    })
  ).pipe(Effect.tapErrorTag("ConsumerFatalError", () => control.pause))
}

/**
 * Runs one group member for a consumer until it fails or is interrupted.
 *
 * @since 0.1.0
 */
export const runMember = <A, K, E, R>(
  consumer: Consumer.Consumer<A, K, E, R>
): Effect.Effect<
  never,
  ConsumerError.ConsumerFatalError | KafkaError,
  R | SchemaBackend.SchemaBackend | KafkaDriver.KafkaDriver
> =>
  Effect.scoped(
    Effect.gen(function*() {
      const driver = yield* KafkaDriver.KafkaDriver
      const topic = yield* Consumer.fullTopic(consumer)
      const member = yield* driver.consumer({
        groupId: consumer.groupId,
        topics: [topic],
        fromBeginning: consumer.startFromBeginning ?? true,
        sessionTimeout: consumer.sessionTimeout,
        heartbeatInterval: consumer.heartbeatInterval,
        maxBytesPerPartition: consumer.maxBytesPerPartition,
        minBytes: consumer.minBytes,
        maxWaitTime: consumer.maxWaitTime
      })
      yield* Effect.logInfo("Consumer started").pipe(
        Effect.annotateLogs({ consumer: consumer.name, topic, groupId: consumer.groupId })
      )
      return yield* member.run((batch, control) => handleBatch(consumer, batch, control))
    })
  )

/**
 * The context every consumer in a list needs.
 *
 * @since 0.1.0
 */
export type Context<Cs extends ReadonlyArray<Consumer.Any>> = Consumer.Context<Cs[number]>

/**
 * @since 0.1.0
 */
export interface Options {
  /** Report `consumer_lag` this often; off when not set. */
  readonly lagInterval?: Duration.DurationInput | undefined
}

/**
 * Runs every enabled consumer (`maxConcurrency` members each) until one fails fatally or the fiber is interrupted.
 * Use it as a worker's main effect under `NodeRuntime.runMain`: SIGTERM interrupts it and shutdown is graceful; a
 * fatal error ends the program with that error.
 *
 * @since 0.1.0
 */
export const run = <const Cs extends ReadonlyArray<Consumer.Any>>(
  consumers: Cs,
  options: Options = {}
): Effect.Effect<
  never,
  ConsumerError.ConsumerFatalError | KafkaError,
  Context<Cs> | SchemaBackend.SchemaBackend | KafkaDriver.KafkaDriver
> => {
  const members = consumers
    .filter((c) => c.disabled !== true)
    .flatMap((c) => Array.from({ length: Math.max(1, c.maxConcurrency ?? 1) }, () => runMember(c)))
  const lag = options.lagInterval === undefined
    ? []
    : [Effect.zipRight(LagReporter.run(consumers, options.lagInterval), Effect.never)]
  const all = [...members, ...lag]
  return all.length === 0
    ? Effect.never
    : Effect.all(all, { concurrency: "unbounded", discard: true }).pipe(Effect.zipRight(Effect.never))
}

/**
 * Runs the consumers in the background for as long as the layer's scope is open (tests, apps that do more than
 * consume). A fatal error is logged and stops all consumers of the layer; use {@link run} to fail the program.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <const Cs extends ReadonlyArray<Consumer.Any>>(
  consumers: Cs,
  options: Options = {}
): Layer.Layer<never, never, Context<Cs> | SchemaBackend.SchemaBackend | KafkaDriver.KafkaDriver> =>
  Layer.scopedDiscard(
    Effect.forkScoped(
      run(consumers, options).pipe(
        Effect.tapErrorCause((cause) => Effect.logError("Consumers stopped", cause))
      )
    )
  )
