/**
 * Consumer lag as the `consumer_lag{consumer_group, topic, partition}` gauge: high watermark minus committed offset
 * (or minus the log start when nothing is committed), updated periodically.
 *
 * @since 0.1.0
 */
import { Consumer, Metrics } from "@deimos/core"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
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

/**
 * Measures the lag of each consumer's group on its topic once and updates the gauge.
 *
 * @since 0.1.0
 */
export const report = (
  consumers: ReadonlyArray<Consumer.Any>
): Effect.Effect<ReadonlyArray<PartitionLag>, KafkaError, KafkaDriver.KafkaDriver> =>
  Effect.scoped(Effect.gen(function*() {
    const driver = yield* KafkaDriver.KafkaDriver
    const admin = yield* driver.admin
    const out: Array<PartitionLag> = []
    for (const consumer of consumers) {
      const topic = yield* Consumer.fullTopic(consumer)
      const offsets = yield* admin.topicOffsets(topic)
      const committed = new Map(
        (yield* admin.committedOffsets(consumer.groupId, topic)).map((c) => [c.partition, Number(c.offset)])
      )
      for (const o of offsets) {
        const done = committed.get(o.partition) ?? -1
        const lag = Number(o.high) - (done >= 0 ? done : Number(o.low))
        out.push({ groupId: consumer.groupId, topic, partition: o.partition, lag })
        yield* Metric.set(
          Metrics.consumerLag.pipe(
            Metric.tagged("consumer_group", consumer.groupId),
            Metric.tagged("topic", topic),
            Metric.tagged("partition", String(o.partition))
          ),
          lag
        )
      }
    }
    return out
  }))

/**
 * Reports every `interval` until interrupted; failures are logged and retried at the next tick.
 *
 * @since 0.1.0
 */
export const run = (
  consumers: ReadonlyArray<Consumer.Any>,
  interval: Duration.DurationInput
): Effect.Effect<void, never, KafkaDriver.KafkaDriver> =>
  report(consumers).pipe(
    Effect.catchAll((error) => Effect.logWarning("Lag report failed", error)),
    Effect.repeat(Schedule.spaced(interval)),
    Effect.asVoid
  )
