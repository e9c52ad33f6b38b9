/**
 * The checkpoint's instrumentation events (the names phobos_db_checkpoint uses) and its metric. Events go to the
 * `CheckpointInstrumentation` in context, a `Context.Reference` that drops them by default; `layerPubSub` makes them
 * a stream for subscribers.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/**
 * Where a message was and who handled it, carried by every event.
 *
 * @since 0.1.0
 */
export interface Subject {
  /** The consumer's name (the listener). */
  readonly consumer: string
  readonly groupId: string
  readonly topic: string
  readonly key: unknown
  readonly partition: number
  readonly offset: string
  readonly retryCount: number
  /** The dedup key. */
  readonly checksum: string
}

/**
 * - `EventAlreadyExistsCheck`: the message is about to be claimed.
 * - `EventAlreadyConsumed`: its claim found the event there (a duplicate); the handler did not run.
 * - `EventAction`: the handler answered `action`.
 * - `EventAcknowledged`: the event was stored with the handler's writes (committed).
 * - `EventSkipped`: the handler skipped the message; nothing stored (its own writes committed).
 * - `EventRetried`: an attempt failed and is tried again after `waitMillis`.
 * - `EventFailed`: the retries ran out; a failure row was stored and the consumer moved on.
 *
 * @since 0.1.0
 */
export type Event =
  | { readonly _tag: "EventAlreadyExistsCheck"; readonly subject: Subject }
  | { readonly _tag: "EventAlreadyConsumed"; readonly subject: Subject }
  | { readonly _tag: "EventAction"; readonly subject: Subject; readonly action: "ack" | "skip" }
  | { readonly _tag: "EventAcknowledged"; readonly subject: Subject; readonly entityId: string }
  | { readonly _tag: "EventSkipped"; readonly subject: Subject }
  | { readonly _tag: "EventRetried"; readonly subject: Subject; readonly waitMillis: number; readonly error: unknown }
  | { readonly _tag: "EventFailed"; readonly subject: Subject; readonly failureId: string; readonly error: unknown }

/**
 * @since 0.1.0
 * @category tags
 */
export class CheckpointInstrumentation
  extends Context.Reference<CheckpointInstrumentation>()("@deimos/checkpoint/CheckpointInstrumentation", {
    defaultValue: (): { readonly emit: (event: Event) => Effect.Effect<void> } => ({ emit: () => Effect.void })
  })
{}

/**
 * `checkpoint` counter; tag `status` is `event_acknowledged`, `event_skipped`, `event_already_consumed`,
 * `event_retried` or `event_failed`, tags `topic` and `group_id` where the message came from.
 *
 * @since 0.1.0
 */
export const counter = Metric.counter("checkpoint", { description: "Messages seen by checkpointed consumers" })

const statusOf: Partial<Record<Event["_tag"], string>> = {
  EventAcknowledged: "event_acknowledged",
  EventSkipped: "event_skipped",
  EventAlreadyConsumed: "event_already_consumed",
  EventRetried: "event_retried",
  EventFailed: "event_failed"
}

/**
 * Emits an event to the instrumentation in context and counts it in {@link counter}.
 *
 * @since 0.1.0
 */
export const emit = (event: Event): Effect.Effect<void> => {
  const status = statusOf[event._tag]
  const emitted = Effect.flatMap(CheckpointInstrumentation, (instrumentation) => instrumentation.emit(event))
  return status === undefined ? emitted : Effect.zipRight(
    Metric.increment(
      Metric.tagged(
        Metric.tagged(Metric.tagged(counter, "status", status), "topic", event.subject.topic),
        "group_id",
        event.subject.groupId
      )
    ),
    emitted
  )
}

/**
 * A stream of events, for subscribers.
 *
 * @since 0.1.0
 * @category tags
 */
export class Events extends Context.Tag("@deimos/checkpoint/CheckpointInstrumentation/Events")<Events, {
  readonly subscribe: Effect.Effect<Stream.Stream<Event>, never, Scope.Scope>
}>() {}

/**
 * Publishes events to a bounded `PubSub` (sliding: a slow subscriber loses old events, never blocks consumers).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPubSub = (capacity = 1024): Layer.Layer<Events | CheckpointInstrumentation> =>
  Layer.scopedContext(Effect.gen(function*() {
    const pubsub = yield* Effect.acquireRelease(PubSub.sliding<Event>(capacity), PubSub.shutdown)
    return Context.make(CheckpointInstrumentation, { emit: (event) => Effect.asVoid(PubSub.publish(pubsub, event)) })
      .pipe(Context.add(Events, { subscribe: Effect.map(PubSub.subscribe(pubsub), Stream.fromQueue) }))
  }))
