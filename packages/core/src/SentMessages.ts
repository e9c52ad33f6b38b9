/**
 * Messages recorded by the test producer backend, for assertions.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"

/**
 * One message as the test backend received it: the encoded bytes and the payload before encoding.
 *
 * @since 0.1.0
 */
export interface SentMessage {
  /** Full topic name (prefix applied). */
  readonly topic: string
  readonly producer: string
  /** The key before encoding (`null` without a key). */
  readonly key: unknown
  readonly encodedKey: Uint8Array | null
  readonly partitionKey: string | null
  readonly headers: Readonly<Record<string, string | Uint8Array>>
  /** The payload after coercion, before encoding; `null` for tombstones. */
  readonly payload: unknown
  readonly encodedPayload: Uint8Array | null
}

/**
 * @since 0.1.0
 */
export declare namespace SentMessages {
  /**
   * @since 0.1.0
   */
  export interface Service {
    readonly record: (messages: ReadonlyArray<SentMessage>) => Effect.Effect<void>
    readonly all: Effect.Effect<ReadonlyArray<SentMessage>>
    readonly forTopic: (topic: string) => Effect.Effect<ReadonlyArray<SentMessage>>
    readonly clear: Effect.Effect<void>
  }
}

/**
 * @since 0.1.0
 * @category tags
 */
export class SentMessages extends Context.Tag("@deimos/core/SentMessages")<SentMessages, SentMessages.Service>() {}

/**
 * An in-memory store; each layer build starts empty.
 *
 * @since 0.1.0
 */
export const make: Effect.Effect<SentMessages.Service> = Effect.map(
  Ref.make<ReadonlyArray<SentMessage>>([]),
  (ref) => ({
    record: (messages) => Ref.update(ref, (all) => [...all, ...messages]),
    all: Ref.get(ref),
    forTopic: (topic) => Effect.map(Ref.get(ref), (all) => all.filter((m) => m.topic === topic)),
    clear: Ref.set(ref, [])
  })
)

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<SentMessages> = Layer.effect(SentMessages, make)
