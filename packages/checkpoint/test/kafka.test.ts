// Checkpointed consumers run by the Kafka runtime (kafkajs on the dev broker over TCP) against real Postgres:
// duplicates on the topic, a failing message that moves the partition on, and a crash before the commit.
import { Checkpoint } from "@deimos/checkpoint"
import { Consumers } from "@deimos/kafka"
import { describe, expect, layer } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { DatabaseIn, Event, Kafka, publish, rows, schemaFor, waitUntil, writeThing } from "./fixtures.js"

const schema = schemaFor("checkpoint_kafka")

class Boom extends Data.TaggedError("Boom")<{ readonly message: string }> {}

const fast = { maxWaitTime: "100 millis", heartbeatInterval: "200 millis", sessionTimeout: "6 seconds" } as const

const eventsOf = (topic: string) =>
  Effect.map(rows(schema, "checkpoint_events"), (all) => all.filter((r) => r.topic === topic))
const failuresOf = (topic: string) =>
  Effect.map(rows(schema, "checkpoint_failures"), (all) => all.filter((r) => r.topic === topic))
const thingsOf = (topic: string) =>
  Effect.map(rows(schema, "things"), (all) => all.filter((r) => String(r.id).startsWith(`${topic}/`)))

/** Runs the checkpoints as Kafka consumers until the returned effect (the stop) is run. */
const start = (checkpoints: ReadonlyArray<Checkpoint.Any>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Layer.buildWithScope(Consumers.layer(checkpoints), scope)
    return Scope.close(scope, Exit.void)
  })

let seq = 0
const uniqueTopic = (base: string) => `${base}-${process.pid}-${++seq}`

describe("checkpointed Kafka consumers", () => {
  layer(Layer.merge(DatabaseIn(schema), Kafka), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.scoped("duplicates on the topic are handled once; a message out of retries is a failure and the partition moves on", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("dupes")
        const calls = new Map<string, number>()
        const checkpoint = Checkpoint.make({
          topic,
          groupId: `g-${topic}`,
          schema: Event,
          keyConfig: { field: "id" },
          tables: { schema },
          maxRetries: 1,
          backoff: { min: "5 millis", max: "10 millis" },
          ...fast,
          handle: (event) =>
            Effect.gen(function*() {
              calls.set(event.id, (calls.get(event.id) ?? 0) + 1)
              if (event.id === "bad") return yield* new Boom({ message: "bad message" })
              yield* writeThing(schema, `${topic}/${event.id}`, event.n)
              return Checkpoint.ack({ entityId: event.id, eventTime: new Date(event.n * 1000) })
            })
        })
        yield* publish(topic, [{ id: "a", n: 1 }, { id: "a", n: 1 }, { id: "bad", n: 2 }, { id: "b", n: 3 }, {
          id: "a",
          n: 1
        }])
        const stop = yield* start([checkpoint])
        yield* waitUntil(Effect.map(eventsOf(topic), (events) => events.length === 2))
        yield* stop
        expect((yield* eventsOf(topic)).map((e) => e.entity_id).sort()).toEqual(["a", "b"])
        expect((yield* thingsOf(topic)).map((t) => t.id).sort()).toEqual([`${topic}/a`, `${topic}/b`])
        expect(calls.get("a")).toBe(1)
        expect(calls.get("bad")).toBe(2)
        const failures = yield* failuresOf(topic)
        expect(failures).toHaveLength(1)
        expect(failures[0]).toMatchObject({ error_class: "Boom", payload: { id: "bad", n: 2 } })
        expect(failures[0].metadata).toMatchObject({ partition: 0, offset: "2", retryCount: 1 })
      }))

    it.scoped("a crash between the handler's writes and the commit: nothing stored, the message is delivered and handled again", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("crash")
        const calls = new Map<string, number>()
        const wrote = yield* Deferred.make<void>()
        const checkpoint = Checkpoint.make({
          topic,
          groupId: `g-${topic}`,
          schema: Event,
          keyConfig: { field: "id" },
          tables: { schema },
          ...fast,
          handle: (event) =>
            Effect.gen(function*() {
              const n = (calls.get(event.id) ?? 0) + 1
              calls.set(event.id, n)
              yield* writeThing(schema, `${topic}/${event.id}`, event.n)
              // the first time, the process "crashes" here: written, not committed (it hangs until it is killed)
              if (event.id === "c1" && n === 1) yield* Effect.zipRight(Deferred.succeed(wrote, undefined), Effect.never)
              return Checkpoint.ack({ entityId: event.id, eventTime: new Date(event.n * 1000) })
            })
        })
        yield* publish(topic, [{ id: "c1", n: 1 }, { id: "c2", n: 2 }])
        const stop = yield* start([checkpoint])
        yield* Deferred.await(wrote)
        // the stop interrupts the hung handler after the shutdown timeout: its transaction rolls back
        yield* stop
        expect(yield* eventsOf(topic)).toHaveLength(0)
        expect(yield* thingsOf(topic)).toHaveLength(0)

        const restart = yield* start([checkpoint])
        yield* waitUntil(Effect.map(eventsOf(topic), (events) => events.length === 2))
        yield* restart
        expect(calls.get("c1")).toBe(2)
        expect(calls.get("c2")).toBe(1)
        expect((yield* thingsOf(topic)).map((t) => t.id).sort()).toEqual([`${topic}/c1`, `${topic}/c2`])
      }))
  })
})
