/**
 * Runs consumer definitions as Kafka group members. Each definition runs `maxConcurrency` members, each in its own
 * fiber; batches go through the core's `processMessage` / `processBatch` (decode → handler → error policy) and
 * offsets are committed per REFERENCE §2: after each message for `message` delivery, after each batch for `batch`
 * and `inlineBatch`. A fatal error stops the consumers without committing the failed message and fails with a
 * `ConsumerFatalError` naming consumer, topic, partition and offset. Interruption (closing the scope) is the
 * graceful shutdown: no more fetching, the in-flight message or batch finishes (a `batch` stops early at a message
 * boundary), handled offsets are committed, the member leaves the group and disconnects.
 *
 * @since 0.1.0
 */
import { Consumer, type ConsumerError, type SchemaBackend } from "@deimos/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as KafkaDriver from "./KafkaDriver.js"
import type { KafkaError } from "./KafkaError.js"
import * as LagReporter from "./LagReporter.js"

/** Longest a stopping member waits for the commit of what it handled before the stop. */
const commitOnStopTimeout = Duration.seconds(5)

/**
 * Handles one fetched batch with a consumer's processor (heartbeats while it runs) and commits per the delivery
 * mode.
 *
 * @since 0.1.0
 */
export const handleBatch = <R>(
  processor: Consumer.Processor<R>,
  batch: KafkaDriver.Batch,
  control: KafkaDriver.BatchControl
): Effect.Effect<void, ConsumerError.ConsumerFatalError, R> => {
  const consumer = processor.consumer
  if (batch.messages.length === 0) return Effect.void
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
  const threshold = consumer.offsetCommitThreshold
  const interval = consumer.offsetCommitInterval === undefined
    ? undefined
    : Duration.toMillis(Duration.decode(consumer.offsetCommitInterval))
  const messageCommits = consumer.delivery === "message" && threshold === undefined && interval === undefined
  const messages = batch.messages

  const body: Effect.Effect<void, ConsumerError.ConsumerFatalError, R> = consumer.delivery === "inlineBatch"
    ? processor.batch(messages).pipe(
      Effect.zipRight(control.resolveOffset(messages[messages.length - 1].offset)),
      Effect.zipRight(commit)
    )
    : Effect.suspend(() => {
      // message by message (a step function, not a generator: this runs per message): stop at a message
      // boundary when the member stops; commit per the delivery mode, and what is left at the end
      const timed = consumer.delivery === "message" && (threshold !== undefined || interval !== undefined)
      let uncommitted = 0
      let lastCommit = 0
      // counted as committed once the commit is done (a stop during it tries again, below)
      const commitHandled = Effect.suspend(() =>
        uncommitted === 0 ? Effect.void : Effect.zipRight(
          commit,
          Effect.sync(() => {
            uncommitted = 0
          })
        )
      )
      const afterHandled = (i: number): Effect.Effect<void, ConsumerError.ConsumerFatalError, R> => {
        uncommitted++
        if (messageCommits) return Effect.zipRight(commitHandled, step(i + 1))
        if (!timed) return step(i + 1)
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const due = (threshold !== undefined && uncommitted >= threshold) ||
            (interval !== undefined && now - lastCommit >= interval)
          if (!due) return step(i + 1)
          lastCommit = now
          return Effect.zipRight(commitHandled, step(i + 1))
        })
      }
      const step = (i: number): Effect.Effect<void, ConsumerError.ConsumerFatalError, R> =>
        i >= messages.length ? commitHandled : Effect.flatMap(control.isRunning, (running) =>
          running
            ? processor.message(messages[i]).pipe(
              Effect.zipRight(control.resolveOffset(messages[i].offset)),
              Effect.flatMap(() => afterHandled(i))
            )
            : commitHandled)
      // interrupted part-way (the stop reached a message waiting to retry, or the grace period ran out): what was
      // handled is committed all the same, within a bound (a finalizer is uninterruptible: the wait is made
      // interruptible for the timeout)
      const commitOnStop = Effect.interruptible(commitHandled).pipe(
        Effect.timeout(commitOnStopTimeout),
        Effect.catchAll(() =>
          Effect.logWarning(
            `The commit of the handled messages did not finish within ${
              Duration.format(commitOnStopTimeout)
            }; they may be delivered again`
          )
        )
      )
      return (timed
        ? Effect.flatMap(Clock.currentTimeMillis, (now) => {
          lastCommit = now
          return step(0)
        })
        : step(0)).pipe(Effect.onInterrupt(() => commitOnStop))
    })
  // `batch` delivery is a batch to the metrics (as the core's processBatch records it), handled message by message
  // here so that a stop can end it at a message boundary
  const measured = consumer.delivery === "batch" ? processor.measureBatch(messages[0], messages.length, body) : body
  return Effect.scoped(
    Effect.gen(function*() {
      // keep the group membership alive during long handlers
      yield* control.heartbeat.pipe(
        Effect.ignore,
        Effect.repeat(Schedule.spaced(heartbeatEvery)),
        Effect.delay(heartbeatEvery),
        Effect.forkScoped
      )
      yield* measured
    })
  ).pipe(Effect.provideService(Consumer.Stopping, control.stopping), Effect.tapError(() => control.pause))
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
      const processor = yield* Consumer.processor(consumer)
      yield* Effect.logInfo("Consumer started")
      return yield* member.run((batch, control) => handleBatch(processor, batch, control)).pipe(
        Effect.onInterrupt(() => Effect.logInfo("Consumer stopping: leaving the group"))
      )
    })
  ).pipe(Effect.annotateLogs({ consumer: consumer.name, groupId: consumer.groupId }))

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
  /** Report `consumer_lag` this often (see `LagReporter`); off when not set. */
  readonly lagInterval?: Duration.DurationInput | undefined
}

/**
 * Runs every enabled consumer (`maxConcurrency` members each, at least one) until one fails (a fatal handler
 * error, or a connection that cannot be made) or the fiber is interrupted; a failure stops the other members
 * gracefully.
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
  const enabled = consumers.filter((c) => c.disabled !== true)
  const members = enabled.flatMap((c) => Array.from({ length: Math.max(1, c.maxConcurrency ?? 1) }, () => runMember(c)))
  const lag = options.lagInterval === undefined || enabled.length === 0
    ? []
    : [Effect.zipRight(LagReporter.run(enabled, options.lagInterval), Effect.never)]
  const all = [...members, ...lag]
  return all.length === 0
    ? Effect.never
    : Effect.all(all, { concurrency: "unbounded", discard: true }).pipe(Effect.zipRight(Effect.never))
}

/**
 * The consumers as a layer, for a worker's `Layer.launch(...)` under `NodeRuntime.runMain`: building the layer
 * *is* running the consumers, so it never finishes building; it fails with the first `ConsumerFatalError` or
 * `KafkaError` (the program then exits with that error), and SIGTERM/SIGINT interrupt it, which is the graceful
 * shutdown. Merge it with other layers (an HTTP server) to run them side by side. It provides nothing, so no layer
 * waits for it; in tests fork `Layer.launch(Consumers.layer(...))` or {@link run}.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <const Cs extends ReadonlyArray<Consumer.Any>>(
  consumers: Cs,
  options: Options = {}
): Layer.Layer<
  never,
  ConsumerError.ConsumerFatalError | KafkaError,
  Context<Cs> | SchemaBackend.SchemaBackend | KafkaDriver.KafkaDriver
> => Layer.scopedDiscard(run(consumers, options))
