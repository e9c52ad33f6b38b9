/**
 * Typed instrumentation events users subscribe to: encode_messages, produce, produce_error (with the failed
 * payloads), outbox produce and drops, handler errors, retries and dead letters, batch consumption.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/**
 * @since 0.1.0
 */
export type Event =
  | { readonly _tag: "EncodeMessages"; readonly producer: string; readonly topic: string; readonly count: number }
  | { readonly _tag: "Produce"; readonly topic: string; readonly count: number; readonly backend: string }
  | {
    /** An outbox relay worker sent rows of some of a topic's lanes to Kafka (and deleted them). */
    readonly _tag: "OutboxProduce"
    readonly worker: string
    readonly topic: string
    readonly lanes: ReadonlyArray<number>
    readonly count: number
  }
  | {
    /** The outbox relay removed rows it can never send (a message larger than the broker accepts). */
    readonly _tag: "OutboxDropped"
    readonly topic: string
    readonly lane: number
    readonly ids: ReadonlyArray<string>
    readonly error: unknown
  }
  | {
    readonly _tag: "ProduceError"
    readonly topic: string
    readonly backend: string
    readonly payloads: ReadonlyArray<unknown>
    readonly error: unknown
  }
  | {
    readonly _tag: "HandlerError"
    readonly consumer: string
    readonly topic: string
    readonly partition: number
    readonly offset: string
    readonly action: "swallow" | "retry" | "deadLetter" | "fatal"
    readonly error: unknown
  }
  | {
    readonly _tag: "DeadLetter"
    readonly consumer: string
    readonly topic: string
    readonly partition: number
    readonly offset: string
    readonly deadLetterTopic: string
    readonly count: number
  }
  | {
    readonly _tag: "RetryHandlerError"
    readonly consumer: string
    readonly topic: string
    readonly partition: number
    readonly offset: string
    readonly retryCount: number
    readonly waitMillis: number
  }
  | {
    readonly _tag: "BatchConsumed"
    readonly consumer: string
    readonly topic: string
    readonly partition: number
    readonly count: number
  }

/**
 * @since 0.1.0
 */
export declare namespace Instrumentation {
  /**
   * @since 0.1.0
   */
  export interface Service {
    readonly emit: (event: Event) => Effect.Effect<void>
  }
}

/**
 * Where events go. A `Context.Reference`: by default they are dropped.
 *
 * @since 0.1.0
 * @category tags
 */
export class Instrumentation extends Context.Reference<Instrumentation>()("@deimos/core/Instrumentation", {
  defaultValue: (): Instrumentation.Service => ({ emit: () => Effect.void })
}) {}

/**
 * Emits an event to the instrumentation in scope.
 *
 * @since 0.1.0
 */
export const emit = (event: Event): Effect.Effect<void> =>
  Effect.flatMap(Instrumentation, (instrumentation) => instrumentation.emit(event))

/**
 * A stream of events, for subscribers.
 *
 * @since 0.1.0
 * @category tags
 */
export class Events extends Context.Tag("@deimos/core/Instrumentation/Events")<Events, {
  readonly subscribe: Effect.Effect<Stream.Stream<Event>, never, Scope.Scope>
}>() {}

/**
 * Publishes events to a bounded `PubSub` (sliding: a slow subscriber loses old events, never blocks producers).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPubSub = (capacity = 1024): Layer.Layer<Events | Instrumentation> =>
  Layer.scopedContext(
    Effect.gen(function*() {
      const pubsub = yield* Effect.acquireRelease(PubSub.sliding<Event>(capacity), PubSub.shutdown)
      return Context.make(Instrumentation, { emit: (event) => Effect.asVoid(PubSub.publish(pubsub, event)) }).pipe(
        Context.add(Events, {
          subscribe: Effect.map(PubSub.subscribe(pubsub), Stream.fromQueue)
        })
      )
    })
  )
