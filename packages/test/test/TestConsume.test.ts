import { Consumer, ErrorPolicy, Tombstone } from "@deimos/core"
import { testConsumeBatch, testConsumeInvalidMessage, testConsumeMessage, TestLayer } from "@deimos/test"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import { Order, order, PaymentDeclined, recordingConsumer } from "./fixtures.js"

describe("testConsumeMessage", () => {
  it.effect("runs the real decode → handler path; the key is generated from the key field", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
      yield* testConsumeMessage(recordingConsumer(seen), order("o-1"), { headers: { h: "1" } })
      expect(yield* Ref.get(seen)).toEqual([{ payload: order("o-1"), key: "o-1", headers: { h: "1" } }])
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("an explicit key wins over the generated one", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
      yield* testConsumeMessage(recordingConsumer(seen), order("o-1"), { key: "other" })
      expect((yield* Ref.get(seen))[0]).toMatchObject({ key: "other" })
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("plain keys are generated as UUIDs and schema keys must be given", () =>
    Effect.gen(function*() {
      const keys = yield* Ref.make<ReadonlyArray<unknown>>([])
      const plain = Consumer.make({
        topic: "orders",
        groupId: "g",
        schema: Order,
        keyConfig: { plain: true },
        handle: (_p, metadata) => Ref.update(keys, (k) => [...k, metadata.key])
      })
      yield* testConsumeMessage(plain, order("o-2"))
      expect((yield* Ref.get(keys))[0]).toMatch(/^[0-9a-f-]{36}$/)
      const keyed = Consumer.make({
        topic: "orders",
        groupId: "g",
        schema: Order,
        keyConfig: { schema: Order },
        handle: () => Effect.void
      })
      const error = yield* Effect.flip(testConsumeMessage(keyed, order("o-3")))
      expect(error.message).toContain("pass { key }")
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("an invalid payload fails with the validation error listing field paths, and the handler never runs", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
      const bad = { ...order("o-1"), customer: { name: "Ada", tier: "bronze" }, lines: [{ sku: "A", qty: 1.5 }] }
      const error = yield* Effect.flip(testConsumeMessage(recordingConsumer(seen), bad as unknown as Order))
      expect(error._tag).toBe("SchemaError")
      expect(error.message).toContain("customer.tier")
      expect(error.message).toContain("lines[0].qty")
      expect(yield* Ref.get(seen)).toEqual([])
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("testConsumeInvalidMessage returns the validation error, and fails for a valid payload", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
      const error = yield* testConsumeInvalidMessage(recordingConsumer(seen), { order_id: { id: 1 } }, { key: "k" })
      expect(error.issues?.map((i) => i.path.join("."))).toEqual(
        expect.arrayContaining(["order_id", "amount", "customer", "lines"])
      )
      const unexpected = yield* Effect.flip(testConsumeInvalidMessage(recordingConsumer(seen), order("ok")))
      expect(unexpected.message).toContain("to reject")
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("under the test layer a handler error surfaces as ConsumerFatalError holding the error", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
      const error = yield* Effect.flip(testConsumeMessage(recordingConsumer(seen), order("o-9", -1)))
      expect(error._tag).toBe("ConsumerFatalError")
      if (error._tag === "ConsumerFatalError") {
        expect(ErrorPolicy.failureOf(error.cause)).toEqual(new PaymentDeclined({ orderId: "o-9" }))
      }
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("with production settings the same handler error is swallowed", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
      yield* testConsumeMessage(recordingConsumer(seen), order("o-9", -1))
      expect(yield* Ref.get(seen)).toEqual([])
    }).pipe(Effect.provide(TestLayer.make({ config: { reraiseErrors: false } }))))
})

describe("testConsumeBatch", () => {
  it.effect("hands an inlineBatch consumer the whole batch with the given keys", () =>
    Effect.gen(function*() {
      const batches = yield* Ref.make<ReadonlyArray<unknown>>([])
      const consumer = Consumer.make({
        topic: "orders",
        groupId: "g",
        schema: Order,
        keyConfig: { field: "order_id" },
        delivery: "inlineBatch",
        tombstones: true,
        handleBatch: (payloads, metadata) =>
          Ref.update(batches, (b) => [...b, {
            ids: payloads.map((p) => Tombstone.isTombstone(p) ? `deleted ${p.key}` : p.order_id),
            keys: metadata.keys
          }])
      })
      yield* testConsumeBatch(consumer, [order("a"), order("b"), Tombstone.make("kc")], { keys: ["ka", "kb", "kc"] })
      expect(yield* Ref.get(batches)).toEqual([{ ids: ["a", "b", "deleted kc"], keys: ["ka", "kb", "kc"] }])
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("runs a message consumer once per payload", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
      yield* testConsumeBatch(recordingConsumer(seen), [order("a"), order("b")])
      expect((yield* Ref.get(seen)).map((s) => (s as { key: string }).key)).toEqual(["a", "b"])
    }).pipe(Effect.provide(TestLayer.layer)))
})

describe("retries under the test layer", () => {
  it.effect("a consumer whose policy retries is retried at once under TestClock, and the retries are visible", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make<Array<number>>([])
      const consumer = Consumer.make({
        topic: "orders",
        groupId: "g",
        schema: Order,
        keyConfig: { field: "order_id" },
        handle: (_order, metadata) =>
          Effect.flatMap(
            Ref.updateAndGet(attempts, (a) => [...a, metadata.retryCount]),
            (a) => a.length < 3 ? Effect.fail(new PaymentDeclined({ orderId: "o-1" })) : Effect.void
          ),
        // its own policy: three retries, a backoff of a minute that the test layer does not wait for
        errorPolicy: { retryOn: ["PaymentDeclined"], backoff: { min: "1 minute", maxRetries: 3 } }
      })
      yield* testConsumeMessage(consumer, order("o-1"))
      expect(yield* Ref.get(attempts)).toEqual([0, 1, 2])
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("retries that run out fail the test with ConsumerFatalError naming the retries", () =>
    Effect.gen(function*() {
      const consumer = Consumer.make({
        topic: "orders",
        groupId: "g",
        schema: Order,
        keyConfig: { field: "order_id" },
        handle: () => Effect.fail(new PaymentDeclined({ orderId: "o-1" })),
        errorPolicy: { retryOn: ["PaymentDeclined"], backoff: { maxRetries: 2 } }
      })
      const error = yield* Effect.flip(testConsumeMessage(consumer, order("o-1")))
      expect(error._tag === "ConsumerFatalError" && error.retries).toBe(2)
    }).pipe(Effect.provide(TestLayer.layer)))
})
