/**
 * Consumer lag as the `consumer_lag{consumer_group, topic, partition}` gauge: high watermark minus committed offset
 * (minus the log start when the group has committed nothing), updated periodically.
 *
 * @since 0.1.0
 */
import { type Consumer, ConsumerProcessor, type DeimosConfig, Metrics } from "@deimos/core"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as KafkaDriver from "./KafkaDriver.js"
import type { KafkaError } from "./KafkaError.js"

/**
 * Lag of one partition.
 *
 * @since 0.1.0
 */
export interface PartitionLag {
  readonly groupId: string
  readonly topic: string
  readonly partition: number
  readonly lag: number
}

/** The lag of a group on each partition of a topic, over an open admin connection. */
const groupLag = (admin: KafkaDriver.Admin, groupId: string, topic: string) =>
  Effect.gen(function*() {
    const offsets = yield* admin.topicOffsets(topic)
    const committed = new Map(
      (yield* admin.committedOffsets(groupId, topic)).map((c) => [c.partition, BigInt(c.offset)])
    )
    return offsets.map((o): PartitionLag => {
      const done = committed.get(o.partition) ?? -1n
      const high = BigInt(o.high)
      const from = done >= 0n ? done : BigInt(o.low)
      return { groupId, topic, partition: o.partition, lag: Number(high > from ? high - from : 0n) }
    })
  })

const measure = (
  admin: KafkaDriver.Admin,
  consumers: ReadonlyArray<Consumer.Any>
): Effect.Effect<ReadonlyArray<PartitionLag>, KafkaError, DeimosConfig.DeimosConfig> =>
  Effect.gen(function*() {
    const out: Array<PartitionLag> = []
    const seen = new Set<string>()
    for (const consumer of consumers) {
      const topic = yield* ConsumerProcessor.topicOf(consumer)
      if (seen.has(`${consumer.groupId}\u0000${topic}`)) continue
      seen.add(`${consumer.groupId}\u0000${topic}`)
      for (const p of yield* groupLag(admin, consumer.groupId, topic)) {
        out.push(p)
        yield* Metric.set(
          Metrics.consumerLag.pipe(
            Metric.tagged("consumer_group", p.groupId),
            Metric.tagged("topic", p.topic),
            Metric.tagged("partition", String(p.partition))
          ),
          p.lag
        )
      }
    }
    return out
  })

/**
 * Measures the lag of consumer groups on topics (the topics as named, no prefix added) once, over one admin
 * connection, without updating the gauge: for tools that watch groups whose consumer definitions they do not have.
 *
 * @since 0.1.0
 */
export const measureGroups = (
  groups: ReadonlyArray<{ readonly groupId: string; readonly topic: string }>
): Effect.Effect<ReadonlyArray<PartitionLag>, KafkaError, KafkaDriver.KafkaDriver> =>
  Effect.scoped(Effect.gen(function*() {
    const admin = yield* (yield* KafkaDriver.KafkaDriver).admin
    const out: Array<PartitionLag> = []
    for (const { groupId, topic } of groups) out.push(...(yield* groupLag(admin, groupId, topic)))
    return out
  }))

/**
 * Measures the lag of each consumer's group on its topic once, updates the gauge and returns the figures.
 *
 * @since 0.1.0
 */
export const report = (
  consumers: ReadonlyArray<Consumer.Any>
): Effect.Effect<ReadonlyArray<PartitionLag>, KafkaError, KafkaDriver.KafkaDriver | DeimosConfig.DeimosConfig> =>
  Effect.scoped(
    Effect.flatMap(
      KafkaDriver.KafkaDriver,
      (driver) => Effect.flatMap(driver.admin, (admin) => measure(admin, consumers))
    )
  )

/**
 * Reports every `interval` over one admin connection until interrupted; failures (a broker away) are logged and
 * the next tick tries again, reconnecting when needed.
 *
 * @since 0.1.0
 */
export const run = (
  consumers: ReadonlyArray<Consumer.Any>,
  interval: Duration.DurationInput
): Effect.Effect<never, never, KafkaDriver.KafkaDriver | DeimosConfig.DeimosConfig> =>
  Effect.scoped(Effect.gen(function*() {
    const driver = yield* KafkaDriver.KafkaDriver
    const admin = yield* driver.admin
    return yield* measure(admin, consumers).pipe(
      Effect.catchAll((error) => Effect.logWarning("Lag report failed", error)),
      Effect.repeat(Schedule.spaced(interval)),
      Effect.zipRight(Effect.never)
    )
  })).pipe(
    Effect.catchAll((error) => Effect.logWarning("Lag reporter cannot connect; trying again", error)),
    Effect.repeat(Schedule.spaced(interval)),
    Effect.zipRight(Effect.never)
  )

/**
 * Reports in the background for as long as the layer's scope is open.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  consumers: ReadonlyArray<Consumer.Any>,
  options: { readonly interval: Duration.DurationInput }
): Layer.Layer<never, never, KafkaDriver.KafkaDriver | DeimosConfig.DeimosConfig> =>
  Layer.scopedDiscard(Effect.forkScoped(run(consumers, options.interval)))
