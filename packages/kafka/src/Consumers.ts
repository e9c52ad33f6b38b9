/**
 * Runs consumer definitions as Kafka group members. Each definition runs `maxConcurrency` members, each in its own
 * fiber, each with a `ConsumerProcessor` bound once (decode → handler → error policy). What was handled is
 * committed at the end of every fetched batch, and within one every `offsetCommitThreshold` messages (1000) or
 * `offsetCommitInterval` (5 s), or after every message with `commitEveryMessage`. A fatal error stops the consumers
 * (what was handled before it is committed; the failed message is not) with a `ConsumerFatalError` naming
 * consumer, topic, partition and offset. Interruption (closing the scope) is the graceful shutdown: no more
 * fetching, the message or batch in hand finishes (a `message`/`batch` delivery stops at the next message), what was
 * handled is committed, the member leaves the group and disconnects.
 *
 * @since 0.1.0
 */
import {
  Background,
  type Consumer,
  type ConsumerError,
  ConsumerProcessor,
  type DeimosConfig,
  ErrorPolicy,
  ProducerBackend,
  ProducerError,
  type SchemaBackend,
  type SchemaError
} from "@deimos/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as KafkaDriver from "./KafkaDriver.js"
import type { KafkaError } from "./KafkaError.js"
import * as KafkaProducerBackend from "./KafkaProducerBackend.js"
import * as LagReporter from "./LagReporter.js"

/** Longest a stopping member waits for the commit of what it handled before the stop. */
const commitOnStopTimeout = Duration.seconds(5)

/** When a member commits within a fetched batch (it always commits at the end of one). */
interface Commits {
  readonly everyMessage: boolean
  readonly threshold: number
  readonly intervalMillis: number
}

const commitsOf = (consumer: Consumer.Any): Commits => ({
  everyMessage: consumer.commitEveryMessage === true,
  threshold: Math.max(1, consumer.offsetCommitThreshold ?? 1000),
  intervalMillis: Duration.toMillis(Duration.decode(consumer.offsetCommitInterval ?? "5 seconds"))
})

/**
 * Handles one fetched batch with a consumer's processor (heartbeats while it runs) and commits what was handled.
 *
 * @since 0.1.0
 */
export const handleBatch = <R>(
  processor: ConsumerProcessor.Processor<R>,
  batch: KafkaDriver.Batch,
  control: KafkaDriver.BatchControl
): Effect.Effect<void, ConsumerError.ConsumerFatalError, R> => {
  const consumer = processor.consumer
  const messages = batch.messages
  if (messages.length === 0) return Effect.void
  const heartbeatEvery = Duration.decode(consumer.heartbeatInterval ?? "3 seconds")
  const commits = commitsOf(consumer)
  // a commit refused during a rebalance is not fatal: the driver rejoins, and what was not committed is delivered
  // again (at least once)
  const commit = control.commit.pipe(
    Effect.catchAll((error) =>
      Effect.logWarning("Offset commit failed; uncommitted messages may be delivered again", error).pipe(
        Effect.annotateLogs({ consumer: consumer.name, topic: batch.topic, partition: batch.partition })
      )
    )
  )

  let uncommitted = 0
  let lastHandled = ""
  let lastCommit = 0
  // the driver is told how far the batch got only when that is committed (it reads the offset per call); counted as
  // committed once the commit is done (a stop during it tries again)
  const commitHandled = Effect.suspend(() =>
    uncommitted === 0 ? Effect.void : control.resolveOffset(lastHandled).pipe(
      Effect.zipRight(commit),
      Effect.zipRight(Effect.sync(() => {
        uncommitted = 0
      }))
    )
  )
  // stopped part-way (a fatal error, the stop reaching a message waiting to retry, the grace period running out):
  // what was handled is committed all the same, within a bound (a finalizer is uninterruptible: the wait is made
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

  // what one step handles: a message, or for inlineBatch a slice of the fetched batch of at most maxBatchSize
  const size = consumer.delivery === "inlineBatch" ? Math.max(1, consumer.maxBatchSize ?? 1000) : 1
  const body = Effect.flatMap(Effect.clock, (clock) => {
    lastCommit = clock.unsafeCurrentTimeMillis()
    /** After the messages up to `next` were handled: commit when due (every message, threshold, interval), go on. */
    const handled = (from: number, next: number) => {
      lastHandled = messages[next - 1].offset
      uncommitted += next - from
      if (
        commits.everyMessage || uncommitted >= commits.threshold ||
        clock.unsafeCurrentTimeMillis() - lastCommit >= commits.intervalMillis
      ) {
        lastCommit = clock.unsafeCurrentTimeMillis()
        return Effect.zipRight(commitHandled, step(next))
      }
      return step(next)
    }
    // step by step (a step function: this runs per message), stopping between steps when the member stops
    // (a step is made when the one before has run, so `isRunning` is asked between messages)
    const step = (i: number): Effect.Effect<void, ConsumerError.ConsumerFatalError, R> => {
      if (i >= messages.length || !control.isRunning()) return commitHandled
      const next = Math.min(messages.length, i + size)
      const handle = size === 1 ? processor.message(messages[i]) : processor.batch(messages.slice(i, next))
      return Effect.flatMap(handle, () => handled(i, next))
    }
    // `batch` delivery is a batch to the metrics, handled message by message so that a stop can end it early
    return consumer.delivery === "batch" ? processor.measureBatch(messages[0], messages.length, step(0)) : step(0)
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
  ).pipe(
    Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : commitOnStop),
    Effect.provideService(ErrorPolicy.Stopping, control.stopping),
    Effect.tapError(() => control.pause)
  )
}

/**
 * A producer backend for dead letters when the program has none: a Kafka producer over the driver, connected on
 * first use (within `scope`); a connection that fails is tried again on the next dead letter.
 */
const deadLetterBackend = (
  driver: KafkaDriver.KafkaDriver.Service,
  scope: Scope.Scope
): Effect.Effect<ProducerBackend.ProducerBackend.Service> =>
  Effect.gen(function*() {
    const lock = yield* Effect.makeSemaphore(1)
    let connected: ProducerBackend.ProducerBackend.Service | undefined
    const connect = lock.withPermits(1)(Effect.suspend(() =>
      connected !== undefined
        ? Effect.succeed(connected)
        : KafkaProducerBackend.make().pipe(
          Effect.provideService(KafkaDriver.KafkaDriver, driver),
          Scope.extend(scope),
          Effect.tap((backend) => {
            connected = backend
          })
        )
    ))
    return {
      name: "kafka (dead letters)",
      execute: (topic, messages, options) =>
        Effect.flatMap(
          Effect.mapError(connect, (error) =>
            new ProducerError.ProducerError({
              reason: "Send",
              producer: "dead letters",
              topic,
              retriable: error.retriable,
              failedCount: messages.length,
              message: `Cannot connect a producer for dead letters: ${error.message}`,
              cause: error
            })),
          (backend) => backend.execute(topic, messages, options)
        )
    }
  })

/**
 * Runs one group member for a consumer until it fails or is interrupted.
 *
 * @since 0.1.0
 */
export const runMember = <A, K, E, R, P>(
  consumer: Consumer.Consumer<A, K, E, R, P>
): Effect.Effect<
  never,
  ConsumerError.ConsumerFatalError | KafkaError | SchemaError.SchemaError,
  R | SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig | KafkaDriver.KafkaDriver
> =>
  Effect.scoped(
    Effect.gen(function*() {
      const driver = yield* KafkaDriver.KafkaDriver
      // resolving the codecs first: a schema that cannot be found stops the member before it joins the group
      const own = yield* Effect.serviceOption(ProducerBackend.ProducerBackend)
      const deadLetters = own._tag === "Some" ? own.value : yield* deadLetterBackend(driver, yield* Effect.scope)
      const processor = yield* ConsumerProcessor.make(consumer).pipe(
        Effect.provideService(ProducerBackend.ProducerBackend, deadLetters)
      )
      const member = yield* driver.consumer({
        groupId: consumer.groupId,
        topics: [processor.topic],
        fromBeginning: consumer.startFromBeginning ?? true,
        sessionTimeout: consumer.sessionTimeout,
        heartbeatInterval: consumer.heartbeatInterval,
        maxBytesPerPartition: consumer.maxBytesPerPartition,
        minBytes: consumer.minBytes,
        maxWaitTime: consumer.maxWaitTime
      })
      yield* Effect.logInfo("Consumer started")
      return yield* member.run((batch, control) => handleBatch(processor, batch, control)).pipe(
        Effect.onInterrupt(() => Effect.logInfo("Consumer stopping: leaving the group"))
      )
    })
  ).pipe(Effect.annotateLogs({ consumer: consumer.name, groupId: consumer.groupId }))

/**
 * What every consumer in a list needs.
 *
 * @since 0.1.0
 */
export type Requirements<Cs extends ReadonlyArray<Consumer.Any>> = Consumer.Requirements<Cs[number]>

/**
 * What running consumers can fail with.
 *
 * @since 0.1.0
 */
export type Error = ConsumerError.ConsumerFatalError | KafkaError | SchemaError.SchemaError

/**
 * @since 0.1.0
 */
export interface Options {
  /** Report `consumer_lag` this often (see `LagReporter`); off when not set. */
  readonly lagInterval?: Duration.DurationInput | undefined
}

/**
 * Runs every enabled consumer (`maxConcurrency` members each, at least one) until one fails (a fatal handler
 * error, a schema that cannot be found, a connection that cannot be made) or the fiber is interrupted; a failure
 * stops the other members gracefully. Dead letters go through the `ProducerBackend` in context, or a Kafka producer
 * of their own.
 *
 * @since 0.1.0
 */
export const run = <const Cs extends ReadonlyArray<Consumer.Any>>(
  consumers: Cs,
  options: Options = {}
): Effect.Effect<
  never,
  Error,
  Requirements<Cs> | SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig | KafkaDriver.KafkaDriver
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
 * The consumers as a layer: building it forks them into the layer's scope and finishes, so it composes with other
 * layers (an HTTP server, a relay); closing the scope (SIGTERM under `NodeRuntime.runMain`) is the graceful
 * shutdown. Run it with `Background.launch` so that a fatal consumer error ends the program with that error:
 * `Consumers.layer([billing]).pipe(Layer.provide(AppLive), Background.launch, NodeRuntime.runMain)`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <const Cs extends ReadonlyArray<Consumer.Any>>(
  consumers: Cs,
  options: Options = {}
): Layer.Layer<
  Background.Running<Error>,
  never,
  Requirements<Cs> | SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig | KafkaDriver.KafkaDriver
> => Background.fork("Consumers", run(consumers, options))
