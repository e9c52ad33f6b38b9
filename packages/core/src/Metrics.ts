/**
 * Metrics with the names Deimos uses, so dashboards built for Deimos carry over.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"

const timeBoundaries = MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 18 })

/**
 * `handler` counter; tag `status` is `received`, `success`, `error`, `batch_received`, `batch_success`,
 * `batch_error`, `tombstone_skipped` (a tombstone a consumer without `tombstones: true` did not handle) or
 * `dead_letter` (a message sent to the dead-letter topic), tag `topic` the topic.
 *
 * @since 0.1.0
 */
export const handler = Metric.counter("handler", { description: "Messages and batches seen by consumer handlers" })

/**
 * `handler` histogram (seconds); tag `time` is `consume`, `consume_batch` or `time_delayed`.
 *
 * @since 0.1.0
 */
export const handlerTime = Metric.histogram("handler", timeBoundaries, "Consumer handler timings in seconds")

/**
 * `publish` counter with tags `status:success` and `topic`.
 *
 * @since 0.1.0
 */
export const publish = Metric.counter("publish", { description: "Messages published" })

/**
 * `publish_error` counter with tag `topic`.
 *
 * @since 0.1.0
 */
export const publishError = Metric.counter("publish_error", { description: "Messages that failed to publish" })

/**
 * `consumer_lag` gauge with tags `consumer_group`, `topic`, `partition`.
 *
 * @since 0.1.0
 */
export const consumerLag = Metric.gauge("consumer_lag", { description: "High watermark minus committed offset" })

/**
 * Tagged metrics are built once per tag set: building one hashes its key, which is too costly per message.
 * A memo of immutable values, not state: dropping it changes nothing but speed.
 */
const memo = <M>(build: (a: string, b: string) => M) => {
  const built = new Map<string, M>()
  return (a: string, b: string): M => {
    const key = `${a}\u0000${b}`
    let metric = built.get(key)
    if (metric === undefined) {
      if (built.size > 10_000) built.clear()
      built.set(key, metric = build(a, b))
    }
    return metric
  }
}

// Built from tagged keys (not `Metric.tagged`, which rebuilds its key on every update); the same keys as
// `Metric.tagged(handler, ...)`, so reading through either gives the same value.
const handlerKey = MetricKey.counter("handler", { description: "Messages and batches seen by consumer handlers" })
const handlerTimeKey = MetricKey.histogram("handler", timeBoundaries, "Consumer handler timings in seconds")
const publishKey = MetricKey.counter("publish", { description: "Messages published" })
const publishErrorKey = MetricKey.counter("publish_error", { description: "Messages that failed to publish" })

const handlerTagged = memo((status, topic) =>
  Metric.fromMetricKey(MetricKey.tagged(MetricKey.tagged(handlerKey, "status", status), "topic", topic))
)
const handlerTimeTagged = memo((time, topic) =>
  Metric.fromMetricKey(MetricKey.tagged(MetricKey.tagged(handlerTimeKey, "time", time), "topic", topic))
)
const publishTagged = memo((status, topic) =>
  Metric.fromMetricKey(MetricKey.tagged(MetricKey.tagged(publishKey, "status", status), "topic", topic))
)
const publishErrorTagged = memo((_, topic) => Metric.fromMetricKey(MetricKey.tagged(publishErrorKey, "topic", topic)))

/**
 * The `handler` metrics of one topic, tags bound. Each is a plain Effect `Metric`: `Metric.increment(m.received)`
 * in an effect, or `m.received.unsafeUpdate(1, labels)` on a hot path that has read the fiber's metric labels
 * (`FiberRef.currentMetricLabels`) once.
 *
 * @since 0.1.0
 */
export interface HandlerMetrics {
  readonly received: Metric.Metric.Counter<number>
  readonly success: Metric.Metric.Counter<number>
  readonly error: Metric.Metric.Counter<number>
  readonly batchReceived: Metric.Metric.Counter<number>
  readonly batchSuccess: Metric.Metric.Counter<number>
  readonly batchError: Metric.Metric.Counter<number>
  readonly tombstoneSkipped: Metric.Metric.Counter<number>
  readonly deadLetter: Metric.Metric.Counter<number>
  readonly consume: Metric.Metric.Histogram<number>
  readonly consumeBatch: Metric.Metric.Histogram<number>
  readonly timeDelayed: Metric.Metric.Histogram<number>
}

const handlerMetricsMemo = memo((_, topic): HandlerMetrics => ({
  received: handlerTagged("received", topic),
  success: handlerTagged("success", topic),
  error: handlerTagged("error", topic),
  batchReceived: handlerTagged("batch_received", topic),
  batchSuccess: handlerTagged("batch_success", topic),
  batchError: handlerTagged("batch_error", topic),
  tombstoneSkipped: handlerTagged("tombstone_skipped", topic),
  deadLetter: handlerTagged("dead_letter", topic),
  consume: handlerTimeTagged("consume", topic),
  consumeBatch: handlerTimeTagged("consume_batch", topic),
  timeDelayed: handlerTimeTagged("time_delayed", topic)
}))

/**
 * The `handler` metrics of a topic.
 *
 * @since 0.1.0
 */
export const handlerMetrics = (topic: string): HandlerMetrics => handlerMetricsMemo("", topic)

/**
 * Counts `handler{status,topic}`.
 *
 * @since 0.1.0
 */
export const countHandler = (status: string, topic: string, by = 1) =>
  Metric.incrementBy(handlerTagged(status, topic), by)

/**
 * Records `handler{time,topic}` in seconds.
 *
 * @since 0.1.0
 */
export const timeHandler = (time: "consume" | "consume_batch" | "time_delayed", topic: string, seconds: number) =>
  Metric.update(handlerTimeTagged(time, topic), seconds)

/**
 * Counts `publish{status:success,topic}`.
 *
 * @since 0.1.0
 */
export const countPublished = (topic: string, by: number) => Metric.incrementBy(publishTagged("success", topic), by)

/**
 * Counts `publish_error{topic}`.
 *
 * @since 0.1.0
 */
export const countPublishError = (topic: string, by: number) => Metric.incrementBy(publishErrorTagged("", topic), by)
