import { Producer } from "@deimos/core"
import { clearSent, expectNotSent, expectSent, installMatchers, sentTo, TestLayer } from "@deimos/test"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { Order } from "./fixtures.js"
import { order, orders } from "./fixtures.js"

installMatchers()

describe("expectSent", () => {
  it.effect("matches nested partial payloads, keys, partition keys and headers", () =>
    Effect.gen(function*() {
      yield* orders.publish(order("o-1", 25), { headers: { source: "web" } })
      yield* expectSent("orders", { amount: 25, customer: { tier: "gold" } })
      yield* expectSent("orders", { lines: [{ sku: "A-1" }] }, { key: "o-1", partitionKey: "o-1" })
      yield* expectSent("orders", { order_id: expect.any(String) }, { headers: { source: "web" } })
      const message = yield* expectSent("orders", { order_id: "o-1" })
      expect(message.encodedPayload).toBeInstanceOf(Uint8Array)
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("fails naming the differences of the closest message", () =>
    Effect.gen(function*() {
      yield* orders.publish(order("o-1", 25))
      yield* orders.publish(order("o-2", 30))
      const error = yield* Effect.flip(expectSent("orders", { order_id: "o-2", amount: 31 }))
      expect(error._tag).toBe("SentMessageAssertionError")
      expect(error.message).toContain("Closest message (key \"o-2\")")
      expect(error.message).toContain("payload.amount: expected 31, received 30")
      expect(error.message).not.toContain("payload.order_id")
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("fails when the key, headers or topic differ", () =>
    Effect.gen(function*() {
      yield* orders.publish(order("o-1"))
      const wrongKey = yield* Effect.flip(expectSent("orders", { order_id: "o-1" }, { key: "o-2" }))
      expect(wrongKey.message).toContain("key: expected \"o-2\", received \"o-1\"")
      const wrongHeader = yield* Effect.flip(expectSent("orders", {}, { headers: { source: "x" } }))
      expect(wrongHeader.message).toContain("headers.source")
      const wrongTopic = yield* Effect.flip(expectSent("refunds", {}))
      expect(wrongTopic.message).toContain("messages were sent to: orders")
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("finds messages on prefixed topics by their unprefixed name", () =>
    Effect.gen(function*() {
      yield* orders.publish(order("o-1"))
      const [message] = yield* sentTo("orders")
      expect(message.topic).toBe("test.orders")
      yield* expectSent("orders", { order_id: "o-1" })
      yield* expectSent("test.orders", { order_id: "o-1" })
    }).pipe(Effect.provide(TestLayer.make({ config: { topicPrefix: "test." } }))))

  it.effect("expectNotSent and clearSent", () =>
    Effect.gen(function*() {
      yield* expectNotSent("orders")
      yield* orders.publish(order("o-1"))
      const error = yield* Effect.flip(expectNotSent("orders"))
      expect(error.message).toContain("1 were sent")
      yield* expectNotSent("orders", { order_id: "o-2" })
      yield* clearSent
      yield* expectNotSent("orders")
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("tombstones are recorded with a null payload", () =>
    Effect.gen(function*() {
      yield* orders.publishList([Producer.envelope<Order, string>(null, { key: "gone" })])
      const [message] = yield* sentTo("orders")
      expect([message.key, message.payload, message.encodedPayload]).toEqual(["gone", null, null])
    }).pipe(Effect.provide(TestLayer.layer)))
})

describe("toHaveSent matcher", () => {
  it.effect("passes for a matching message and fails with the closest difference", () =>
    Effect.gen(function*() {
      yield* orders.publish(order("o-7", 70))
      expect("orders").toHaveSent({ order_id: "o-7" }, { key: "o-7" })
      expect("orders").not.toHaveSent({ order_id: "o-8" })
      expect(() => expect("orders").toHaveSent({ amount: 71 })).toThrow("payload.amount: expected 71, received 70")
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("each test sees only its own messages: nothing global to reset", () =>
    Effect.sync(() => {
      expect("orders").not.toHaveSent({ order_id: "o-7" })
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("accepts an array of sent messages too", () =>
    Effect.gen(function*() {
      yield* orders.publish(order("o-1"))
      expect(yield* sentTo("orders")).toHaveSent({ customer: { name: "Ada" } })
    }).pipe(Effect.provide(TestLayer.layer)))
})

describe("TestLayer isolation", () => {
  it.effect("a first test publishes", () =>
    Effect.gen(function*() {
      yield* orders.publish(order("leak"))
      expect(yield* sentTo("orders")).toHaveLength(1)
    }).pipe(Effect.provide(TestLayer.layer)))

  it.effect("a second test starts empty", () =>
    Effect.gen(function*() {
      expect(yield* sentTo("orders")).toHaveLength(0)
    }).pipe(Effect.provide(TestLayer.layer)))
})
