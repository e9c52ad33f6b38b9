import { KafkaDriver, KafkaJs } from "@deimos/kafka"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { start, waitFor } from "./helpers.js"

const encoder = new TextEncoder()

describe("deimos broker", () => {
  it.live("serves Kafka and the registry, shows progress, and exits 0 on SIGTERM", () =>
    Effect.gen(function*() {
      const p = yield* start(["broker", "--port", "0", "--registry-port", "0", "--partitions", "2"], {
        DEIMOS_PROGRESS_INTERVAL: "100 millis"
      })
      yield* waitFor("the broker printed its addresses", () => /Schema Registry: \S+/.test(p.stdout()), p)
      const broker = /Kafka broker:\s+(\S+)/.exec(p.stdout())![1]
      const registry = /Schema Registry: (\S+)/.exec(p.stdout())![1]
      yield* Effect.scoped(
        Effect.gen(function*() {
          const driver = yield* KafkaDriver.KafkaDriver
          const producer = yield* driver.producer()
          yield* producer.send("cli-broker", [
            { key: null, value: encoder.encode("one"), partitionKey: null, headers: {} },
            { key: null, value: encoder.encode("two"), partitionKey: null, headers: {} }
          ])
          const admin = yield* driver.admin
          const offsets = yield* admin.topicOffsets("cli-broker")
          expect(offsets.map((o) => o.partition).sort()).toEqual([0, 1])
          expect(offsets.reduce((n, o) => n + Number(o.high), 0)).toBe(2)
        }).pipe(Effect.provide(KafkaJs.layer({ brokers: [broker], clientId: "cli-test", logLevel: "nothing" })))
      )
      const subjects = yield* Effect.promise(() => fetch(`${registry}/subjects`).then((r) => r.json()))
      expect(subjects).toEqual([])
      yield* waitFor("a progress line counting the records", () => p.stderr().includes("broker: 2 records"), p)
      yield* p.signal("SIGTERM")
      expect(yield* p.exited).toBe(0)
      expect(p.stderr()).toContain("Stopped.")
    }).pipe(Effect.scoped))

  it.live("redraws its progress line in place in tty mode; exits 0 on SIGINT too", () =>
    Effect.gen(function*() {
      const p = yield* start(["broker", "--port", "0", "--registry-port", "0"], {
        DEIMOS_PROGRESS: "tty",
        DEIMOS_PROGRESS_INTERVAL: "100 millis"
      })
      yield* waitFor("the broker printed its addresses", () => p.stdout().includes("Schema Registry:"), p)
      // carriage return and erase-line before each redraw, no newline between them
      yield* waitFor("two redraws", () => p.stderr().split("\r\x1b[2Kbroker: ").length >= 3, p)
      expect(p.stderr()).not.toMatch(/broker: [^\n]*\n[^]*broker: /)
      yield* p.signal("SIGINT")
      expect(yield* p.exited).toBe(0)
    }).pipe(Effect.scoped))

  it.live("a port already taken fails with exit 1 and says so", () =>
    Effect.gen(function*() {
      const first = yield* start(["broker", "--port", "0", "--registry-port", "0"], { DEIMOS_PROGRESS: "off" })
      yield* waitFor("the broker printed its addresses", () => first.stdout().includes("Schema Registry:"), first)
      const port = /Kafka broker:\s+\S+:(\d+)/.exec(first.stdout())![1]
      const second = yield* start(["broker", "--port", port, "--registry-port", "0"], { DEIMOS_PROGRESS: "off" })
      expect(yield* second.exited).toBe(1)
      expect(second.stderr()).toContain(port)
    }).pipe(Effect.scoped))
})
