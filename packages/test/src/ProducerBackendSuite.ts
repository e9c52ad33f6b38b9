/**
 * The conformance suite of the `ProducerBackend` port: what a producer relies on from every backend (the in-memory
 * test backend, the Kafka backends, the outbox). `execute(topic, messages)` delivers each message's key, value and
 * headers as given, tombstones included; messages with the same partition key arrive in the order they were given,
 * across calls; a destination that cannot be reached fails the call with a `ProducerError` whose `retriable` is
 * true. A backend's test file calls `suite(name, options)`, saying how to read back what was delivered.
 *
 * @since 0.1.0
 */
import { ProducerBackend, type ProducerError } from "@deimos/core"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"

/**
 * A message as the destination holds it.
 *
 * @since 0.1.0
 */
export interface Delivered {
  readonly key: Uint8Array | null
  readonly value: Uint8Array | null
  readonly headers: Readonly<Record<string, string | Uint8Array | undefined>>
}

/**
 * @since 0.1.0
 */
export interface Options<E, R> {
  /** The backend under test, with what `read` needs; built once for the suite. */
  readonly layer: Layer.Layer<ProducerBackend.ProducerBackend | R, E>
  /** A topic of its own for a test (created if the destination needs it). */
  readonly topic: (name: string) => Effect.Effect<string, unknown, R>
  /**
   * Reads back what was delivered to `topic`, waiting (with a bound) until `count` messages are there; messages of
   * one partition key in the order the destination holds them.
   */
  readonly read: (topic: string, count: number) => Effect.Effect<ReadonlyArray<Delivered>, unknown, R>
  /** The backend with its destination out of reach (a broker that is down), when the backend has one. */
  readonly unreachable?: Layer.Layer<ProducerBackend.ProducerBackend, unknown> | undefined
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const text = (bytes: Uint8Array | null) => bytes === null ? null : decoder.decode(bytes)
const header = (value: string | Uint8Array | undefined) =>
  value === undefined ? undefined : typeof value === "string" ? value : decoder.decode(value)

const message = (
  key: string | null,
  value: string | null,
  headers: Record<string, string> = {}
): ProducerBackend.ProducerMessage => ({
  key: key === null ? null : encoder.encode(key),
  value: value === null ? null : encoder.encode(value),
  partitionKey: key,
  headers,
  rawKey: key,
  payload: value,
  producer: "suite"
})

/**
 * Registers the suite's tests under `describe(name)`.
 *
 * @since 0.1.0
 */
export const suite = <E, R>(name: string, options: Options<E, R>): void => {
  describe(`ProducerBackend conformance: ${name}`, () => {
    it.layer(options.layer, { timeout: 60_000 })((it) => {
      it.effect("delivers each message's key, value and headers as given", () =>
        Effect.gen(function*() {
          const backend = yield* ProducerBackend.ProducerBackend
          const topic = yield* options.topic("delivers")
          yield* backend.execute(topic, [
            message("k1", "one", { source: "suite", "x-id": "1" }),
            message(null, "keyless"),
            message("k2", "two", { "x-id": "2" })
          ], { sync: true })
          const delivered = yield* options.read(topic, 3)
          const seen = delivered.map((m) => ({
            key: text(m.key),
            value: text(m.value),
            id: header(m.headers["x-id"]),
            source: header(m.headers.source)
          }))
          expect(seen).toEqual(expect.arrayContaining([
            { key: "k1", value: "one", id: "1", source: "suite" },
            { key: null, value: "keyless", id: undefined, source: undefined },
            { key: "k2", value: "two", id: "2", source: undefined }
          ]))
          expect(seen).toHaveLength(3)
        }))

      it.effect("keeps the order of messages with the same partition key, across calls", () =>
        Effect.gen(function*() {
          const backend = yield* ProducerBackend.ProducerBackend
          const topic = yield* options.topic("ordered")
          const keys = ["a", "b", "c"]
          for (let call = 0; call < 4; call++) {
            yield* backend.execute(
              topic,
              Array.from({ length: 30 }, (_, i) => message(keys[i % keys.length], `${call * 30 + i}`)),
              { sync: true }
            )
          }
          const delivered = yield* options.read(topic, 120)
          for (const key of keys) {
            const values = delivered.filter((m) => text(m.key) === key).map((m) => Number(text(m.value)))
            expect(values).toHaveLength(40)
            expect(values).toEqual([...values].sort((x, y) => x - y))
          }
        }))

      it.effect("sends a tombstone as its key with a null value", () =>
        Effect.gen(function*() {
          const backend = yield* ProducerBackend.ProducerBackend
          const topic = yield* options.topic("tombstones")
          yield* backend.execute(topic, [message("gone", null), message("kept", "v")], { sync: true })
          const delivered = yield* options.read(topic, 2)
          const byKey = new Map(delivered.map((m) => [text(m.key), m.value]))
          expect(byKey.get("gone")).toBeNull()
          expect(text(byKey.get("kept") ?? null)).toBe("v")
        }))

      it.effect("an empty call delivers nothing and succeeds", () =>
        Effect.gen(function*() {
          const backend = yield* ProducerBackend.ProducerBackend
          const topic = yield* options.topic("empty")
          yield* backend.execute(topic, [], { sync: true })
          yield* backend.execute(topic, [message("k", "after")], { sync: true })
          const delivered = yield* options.read(topic, 1)
          expect(delivered.map((m) => text(m.value))).toEqual(["after"])
        }))
    })

    if (options.unreachable !== undefined) {
      const unreachable = options.unreachable
      it.effect(
        "fails with a retriable ProducerError when the destination cannot be reached",
        () =>
          Effect.gen(function*() {
            const backend = yield* ProducerBackend.ProducerBackend
            const error: ProducerError.ProducerError = yield* Effect.flip(
              backend.execute("unreachable", [message("k", "v")], { sync: true })
            )
            expect(error._tag).toBe("ProducerError")
            expect(error.reason).toBe("Send")
            expect(error.retriable).toBe(true)
            expect(error.topic).toBe("unreachable")
          }).pipe(Effect.provide(unreachable), Effect.scoped),
        { timeout: 60_000 }
      )
    }
  })
}
