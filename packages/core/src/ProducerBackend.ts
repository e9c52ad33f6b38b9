/**
 * The producer backend port: one method, `execute(topic, messages)`. Backends: Kafka (sync and buffered) in
 * `@deimos/kafka`, the outbox in the database packages, and the in-memory test backend here.
 *
 * A backend runs in the caller's fiber, so a backend that writes to a database can join the caller's ambient
 * transaction (read with `Effect.serviceOption`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { ProducerError } from "./ProducerError.js"
import * as SentMessages from "./SentMessages.js"

/**
 * One encoded message, with the payload it was encoded from.
 *
 * @since 0.1.0
 */
export interface ProducerMessage {
  readonly key: Uint8Array | null
  /** `null` for tombstones. */
  readonly value: Uint8Array | null
  /** Chooses the partition; `null` lets the backend choose (by the key, else spread). */
  readonly partitionKey: string | null
  /** Header values as sent: producers write strings; dead letters keep received bytes as they were. */
  readonly headers: Readonly<Record<string, string | Uint8Array>>
  /** The key before encoding. */
  readonly rawKey: unknown
  /** The payload after coercion, before encoding; `null` for tombstones. */
  readonly payload: unknown
  /** The producer's name. */
  readonly producer: string
}

/**
 * Per-call options. `sync: true` asks a buffering backend to send now and wait for the broker.
 *
 * @since 0.1.0
 */
export interface ExecuteOptions {
  readonly sync?: boolean | undefined
}

/**
 * @since 0.1.0
 */
export declare namespace ProducerBackend {
  /**
   * @since 0.1.0
   */
  export interface Service {
    readonly name: string
    readonly execute: (
      topic: string,
      messages: ReadonlyArray<ProducerMessage>,
      options?: ExecuteOptions
    ) => Effect.Effect<void, ProducerError>
  }
}

/**
 * @since 0.1.0
 * @category tags
 */
export class ProducerBackend extends Context.Tag("@deimos/core/ProducerBackend")<
  ProducerBackend,
  ProducerBackend.Service
>() {}

/**
 * A backend that records every message in `SentMessages`.
 *
 * @since 0.1.0
 */
export const makeTest: Effect.Effect<ProducerBackend.Service, never, SentMessages.SentMessages> = Effect.map(
  SentMessages.SentMessages,
  (sent) => ({
    name: "test",
    execute: (topic, messages) =>
      sent.record(messages.map((m) => ({
        topic,
        producer: m.producer,
        key: m.rawKey,
        encodedKey: m.key,
        partitionKey: m.partitionKey,
        headers: m.headers,
        payload: m.payload,
        encodedPayload: m.value
      })))
  })
)

/**
 * The in-memory test backend, with a fresh `SentMessages` store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest: Layer.Layer<ProducerBackend | SentMessages.SentMessages> = Layer.effect(
  ProducerBackend,
  makeTest
).pipe(Layer.provideMerge(SentMessages.layerMemory))
