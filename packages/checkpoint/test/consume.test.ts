// Consuming through a checkpoint against real Postgres: duplicates, two consumers at once, retries, failures, a crash
// before the commit, skips, dedup keys, instrumentation and the retention sweep.
import { Checkpoint, CheckpointInstrumentation } from "@deimos/checkpoint"
import { Tombstone } from "@deimos/core"
import { Database } from "@deimos/sql"
import type { DatabaseError } from "@deimos/sql/DatabaseError"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import { DatabaseIn, Event, metadataOf, rows, schemaFor, url, waitUntil, writeThing } from "./fixtures.js"

const schema = schemaFor("checkpoint_consume")

class Boom extends Data.TaggedError("Boom")<{ readonly message: string }> {}
class Permanent extends Data.TaggedError("Permanent")<{ readonly message: string }> {}

let seq = 0
const uniqueTopic = (base: string) => `${base}-${++seq}`

/** A checkpoint on `topic` whose handler writes a thing and acks, after `before` (which may fail). */
const counting = (
  topic: string,
  before: (calls: number) => Effect.Effect<unknown, Boom | Permanent | DatabaseError, Database.Database> = () =>
    Effect.void,
  options: {
    readonly maxRetries?: number
    readonly retryConsume?: (error: unknown) => boolean
  } = {}
) => {
  const calls = { n: 0 }
  const checkpoint = Checkpoint.make({
    topic,
    groupId: "g",
    schema: Event,
    keyConfig: { field: "id" },
    tables: { schema },
    backoff: { min: "1 millis", max: "5 millis" },
    ...(options.maxRetries === undefined ? {} : { maxRetries: options.maxRetries }),
    ...(options.retryConsume === undefined
      ? {}
      : { retryConsume: (_p: unknown, _m: unknown, error: unknown) => options.retryConsume!(error) }),
    handle: (event) =>
      Effect.gen(function*() {
        calls.n++
        yield* writeThing(schema, `${topic}/${event.id}`, event.n)
        yield* before(calls.n)
        return Checkpoint.ack({ entityId: event.id, eventTime: new Date(1000 * event.n) })
      })
  })
  return { checkpoint, calls }
}

const eventsOf = (topic: string) =>
  Effect.map(rows(schema, "checkpoint_events"), (all) => all.filter((r) => r.topic === topic))
const failuresOf = (topic: string) =>
  Effect.map(rows(schema, "checkpoint_failures"), (all) => all.filter((r) => r.topic === topic))
const thingsOf = (topic: string) =>
  Effect.map(rows(schema, "things"), (all) => all.filter((r) => String(r.id).startsWith(`${topic}/`)))

describe("consuming through a checkpoint", () => {
  layer(DatabaseIn(schema), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("the same message delivered twice is handled once", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("twice")
        const { calls, checkpoint } = counting(topic)
        expect(yield* checkpoint.consume({ id: "a", n: 1 }, metadataOf(topic, 0))).toBe("acknowledged")
        // a redelivery (after a rebalance: another offset, the same message)
        expect(yield* checkpoint.consume({ id: "a", n: 1 }, metadataOf(topic, 7))).toBe("alreadyConsumed")
        expect(calls.n).toBe(1)
        const events = yield* eventsOf(topic)
        expect(events).toHaveLength(1)
        expect(events[0]).toMatchObject({ group_id: "g", entity_id: "a", payload: { id: "a", n: 1 } })
        expect(yield* thingsOf(topic)).toHaveLength(1)
        // another group has its own log
        const other = Checkpoint.make({
          topic,
          groupId: "other",
          schema: Event,
          keyConfig: { field: "id" },
          tables: { schema },
          handle: () => Effect.succeed(Checkpoint.ack({ entityId: "a", eventTime: new Date(0) }))
        })
        expect(yield* other.consume({ id: "a", n: 1 }, metadataOf(topic, 0))).toBe("acknowledged")
      }))

    it.scoped("the same message by two consumers at once (two pools) is handled once", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("race")
        const inside = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const { calls, checkpoint } = counting(topic, () =>
          Effect.zipRight(Deferred.succeed(inside, undefined), Deferred.await(release)))
        const secondPool = yield* Layer.build(Database.layer({ url, max: 2, applicationName: `${schema}_second` }))
        const first = yield* Effect.fork(checkpoint.consume({ id: "r", n: 1 }, metadataOf(topic, 0)))
        yield* Deferred.await(inside)
        const second = yield* Effect.fork(
          checkpoint.consume({ id: "r", n: 1 }, metadataOf(topic, 0)).pipe(Effect.provide(secondPool))
        )
        // the second claim waits on the unique index for the first transaction
        yield* waitUntil(
          Effect.map(
            Database.execute(sql`select count(*)::int as n from pg_stat_activity
              where application_name = ${`${schema}_second`} and wait_event_type = 'Lock'`),
            (r) =>
              Number(r[0].n) === 1
          )
        )
        yield* Deferred.succeed(release, undefined)
        const outcomes = [yield* Fiber.join(first), yield* Fiber.join(second)]
        expect(outcomes).toEqual(["acknowledged", "alreadyConsumed"])
        expect(calls.n).toBe(1)
        expect(yield* eventsOf(topic)).toHaveLength(1)
        expect(yield* thingsOf(topic)).toHaveLength(1)
      }))

    it.effect("a handler that fails then succeeds within its retries: one event, the failed attempt's writes rolled back", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("flaky")
        // writes its thing, then fails twice: a write that survived a failed attempt would collide on the thing's key
        const { calls, checkpoint } = counting(
          topic,
          (n) => n <= 2 ? Effect.fail(new Boom({ message: `attempt ${n}` })) : Effect.void
        )
        expect(yield* checkpoint.consume({ id: "f", n: 1 }, metadataOf(topic, 0))).toBe("acknowledged")
        expect(calls.n).toBe(3)
        expect(yield* eventsOf(topic)).toHaveLength(1)
        expect(yield* thingsOf(topic)).toHaveLength(1)
        expect(yield* failuresOf(topic)).toHaveLength(0)
      }))

    it.effect("a handler out of retries: one failure row with the error, no event, no writes; the next message goes on", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("exhausted")
        const { calls, checkpoint } = counting(
          topic,
          () => Effect.fail(new Boom({ message: "always" })),
          { maxRetries: 2 }
        )
        expect(yield* checkpoint.consume({ id: "x", n: 1 }, metadataOf(topic, 3, { trace: "t1" }))).toBe("failed")
        expect(calls.n).toBe(3)
        const failures = yield* failuresOf(topic)
        expect(failures).toHaveLength(1)
        expect(failures[0]).toMatchObject({
          group_id: "g",
          payload: { id: "x", n: 1 },
          metadata: { consumer: `g:${topic}`, partition: 0, offset: "3", headers: { trace: "t1" }, retryCount: 2 },
          error_class: "Boom",
          error_message: "always"
        })
        expect(String(failures[0].error_backtrace)).toContain("always")
        expect(failures[0].checksum).toMatch(/^[0-9a-f]{32}$/)
        expect(yield* eventsOf(topic)).toHaveLength(0)
        expect(yield* thingsOf(topic)).toHaveLength(0)
      }))

    it.effect("a failed tombstone is stored with its key and retried as a tombstone, the failure then gone", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("tombstone")
        let failing = true
        const seen: Array<unknown> = []
        const checkpoint = Checkpoint.make({
          topic,
          groupId: "g",
          schema: Event,
          keyConfig: { field: "id" },
          tombstones: true,
          tables: { schema },
          maxRetries: 0,
          backoff: { min: "1 millis", max: "5 millis" },
          handle: (payload) =>
            Effect.gen(function*() {
              seen.push(payload)
              if (failing) return yield* new Boom({ message: "not yet" })
              const id = Tombstone.isTombstone(payload) ? String(payload.key) : payload.id
              return Checkpoint.ack({ entityId: id, eventTime: new Date(0), eventType: "deleted" })
            })
        })
        const metadata = { ...metadataOf(topic, 7), key: "gone-1" }
        expect(yield* checkpoint.consume(Tombstone.make("gone-1"), metadata)).toBe("failed")
        const [failure] = yield* failuresOf(topic)
        expect(failure.payload).toEqual({ _tag: "Tombstone", key: "gone-1" })
        failing = false
        expect(yield* checkpoint.retryFailure(String(failure.id))).toEqual({ acknowledged: true })
        // the handler saw a tombstone both times, with its key, not the stored JSON object
        expect(seen).toHaveLength(2)
        for (const payload of seen) {
          expect(Tombstone.isTombstone(payload)).toBe(true)
          expect((payload as Tombstone.Tombstone<string>).key).toBe("gone-1")
        }
        expect(yield* failuresOf(topic)).toHaveLength(0)
        expect(yield* eventsOf(topic)).toMatchObject([{ entity_id: "gone-1", event_type: "deleted" }])
      }))

    it.effect("retryConsume decides: an error it refuses is stored at once; a defect is stored as Defect", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("decide")
        const { calls, checkpoint } = counting(
          topic,
          () => Effect.fail(new Permanent({ message: "never again" })),
          { maxRetries: 5, retryConsume: (error) => (error as { _tag: string })._tag !== "Permanent" }
        )
        expect(yield* checkpoint.consume({ id: "p", n: 1 }, metadataOf(topic, 0))).toBe("failed")
        expect(calls.n).toBe(1)
        const thrower = counting(`${topic}-die`, () => Effect.die(new TypeError("undefined is not a function")), {
          maxRetries: 0
        })
        expect(yield* thrower.checkpoint.consume({ id: "d", n: 1 }, metadataOf(`${topic}-die`, 0))).toBe("failed")
        const [defect] = yield* failuresOf(`${topic}-die`)
        expect(defect).toMatchObject({ error_class: "Defect", error_message: "undefined is not a function" })
        expect(String(defect.error_backtrace)).toContain("TypeError")
      }))

    it.scoped("a crash between the handler's writes and the commit leaves neither; the message is handled again", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("crash")
        const wrote = yield* Deferred.make<void>()
        const { calls, checkpoint } = counting(
          topic,
          (n) => n === 1 ? Effect.zipRight(Deferred.succeed(wrote, undefined), Effect.never) : Effect.void
        )
        const fiber = yield* Effect.fork(checkpoint.consume({ id: "c", n: 1 }, metadataOf(topic, 0)))
        yield* Deferred.await(wrote)
        yield* Fiber.interrupt(fiber)
        expect(yield* eventsOf(topic)).toHaveLength(0)
        expect(yield* thingsOf(topic)).toHaveLength(0)
        expect(yield* checkpoint.consume({ id: "c", n: 1 }, metadataOf(topic, 0))).toBe("acknowledged")
        expect(calls.n).toBe(2)
        expect(yield* eventsOf(topic)).toHaveLength(1)
        expect(yield* thingsOf(topic)).toHaveLength(1)
      }))

    it.effect("a connection lost before the commit: nothing kept, retried past maxRetries (the database's trouble)", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("terminated")
        // the first attempt writes, then its connection is killed before the commit
        const { calls, checkpoint } = counting(
          topic,
          (n) => n === 1 ? Database.execute(sql`select pg_terminate_backend(pg_backend_pid())`) : Effect.void,
          { maxRetries: 0 }
        )
        expect(yield* checkpoint.consume({ id: "t", n: 1 }, metadataOf(topic, 0))).toBe("acknowledged")
        expect(calls.n).toBe(2)
        expect(yield* eventsOf(topic)).toHaveLength(1)
        expect(yield* thingsOf(topic)).toHaveLength(1)
        expect(yield* failuresOf(topic)).toHaveLength(0)
      }))

    it.effect("a skip stores no event (the handler's writes commit) and the message is handled again next time", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("skip")
        let calls = 0
        const checkpoint = Checkpoint.make({
          topic,
          groupId: "g",
          schema: Event,
          keyConfig: { field: "id" },
          tables: { schema },
          handle: (event) => Effect.as(writeThing(schema, `${topic}/${event.id}/${++calls}`, event.n), Checkpoint.skip)
        })
        expect(yield* checkpoint.consume({ id: "s", n: 1 }, metadataOf(topic, 0))).toBe("skipped")
        expect(yield* checkpoint.consume({ id: "s", n: 1 }, metadataOf(topic, 1))).toBe("skipped")
        expect(yield* eventsOf(topic)).toHaveLength(0)
        expect(yield* thingsOf(topic)).toHaveLength(2)
      }))

    it.effect("the default dedup key ignores field order; dedupKey can take it from a header", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("keys")
        const { calls, checkpoint } = counting(topic)
        expect(yield* checkpoint.consume({ id: "k", n: 1 }, metadataOf(topic, 0))).toBe("acknowledged")
        expect(yield* checkpoint.consume({ n: 1, id: "k" }, metadataOf(topic, 1))).toBe("alreadyConsumed")
        expect(calls.n).toBe(1)

        const byHeader = Checkpoint.make({
          topic: `${topic}-h`,
          groupId: "g",
          schema: Event,
          keyConfig: { field: "id" },
          tables: { schema },
          dedupKey: (_payload, metadata) => metadata.headers["message-id"] ?? "none",
          handle: (event) => Effect.succeed(Checkpoint.ack({ entityId: event.id, eventTime: new Date(0) }))
        })
        const h = (id: string) => metadataOf(`${topic}-h`, 0, { "message-id": id })
        expect(yield* byHeader.consume({ id: "a", n: 1 }, h("m1"))).toBe("acknowledged")
        // another payload, the same message id: a duplicate
        expect(yield* byHeader.consume({ id: "b", n: 2 }, h("m1"))).toBe("alreadyConsumed")
        expect(yield* byHeader.consume({ id: "a", n: 1 }, h("m2"))).toBe("acknowledged")
        expect((yield* eventsOf(`${topic}-h`)).map((e) => e.checksum)).toEqual(["m1", "m2"])
      }))

    it.scoped("emits the instrumentation events of each outcome", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("events")
        const context = yield* Layer.build(CheckpointInstrumentation.layerPubSub())
        const stream = yield* Effect.provide(
          Effect.flatMap(CheckpointInstrumentation.Events, (events) => events.subscribe),
          context
        )
        const { checkpoint } = counting(topic)
        yield* checkpoint.consume({ id: "e", n: 1 }, metadataOf(topic, 0)).pipe(Effect.provide(context))
        yield* checkpoint.consume({ id: "e", n: 1 }, metadataOf(topic, 1)).pipe(Effect.provide(context))
        const events = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(stream, 5)))
        expect(events.map((e) => e._tag)).toEqual([
          "EventAlreadyExistsCheck",
          "EventAction",
          "EventAcknowledged",
          "EventAlreadyExistsCheck",
          "EventAlreadyConsumed"
        ])
        expect(events[2].subject).toMatchObject({ consumer: `g:${topic}`, groupId: "g", topic, offset: "0" })
        const counted = (status: string) =>
          Effect.map(
            Metric.value(
              Metric.tagged(
                Metric.tagged(Metric.tagged(CheckpointInstrumentation.counter, "status", status), "topic", topic),
                "group_id",
                "g"
              )
            ),
            (state) => state.count
          )
        expect(yield* counted("event_acknowledged")).toBe(1)
        expect(yield* counted("event_already_consumed")).toBe(1)
        expect(yield* counted("event_failed")).toBe(0)
      }))

    it.scoped("the sweep deletes events older than the retention age, in batches; the sweeper runs in the scope", () =>
      Effect.gen(function*() {
        const topic = uniqueTopic("sweep")
        const { checkpoint } = counting(topic)
        for (let n = 0; n < 7; n++) yield* checkpoint.consume({ id: `s${n}`, n }, metadataOf(topic, n))
        // five of them two days old
        yield* Database.execute(sql`update ${sql.raw(`"${schema}".checkpoint_events`)}
          set created_at = now() - interval '2 days' where topic = ${topic} and entity_id not in ('s5', 's6')`)
        expect(yield* Checkpoint.sweep({ maxAge: "1 day", batchSize: 2, tables: { schema } })).toBe(5)
        expect((yield* eventsOf(topic)).map((e) => e.entity_id).sort()).toEqual(["s5", "s6"])
        // the window is the retention age: a swept message is handled again
        yield* Database.execute(sql`update ${sql.raw(`"${schema}".checkpoint_events`)}
          set created_at = now() - interval '2 days' where topic = ${topic}`)
        yield* Checkpoint.sweeper({ maxAge: "1 day", interval: "1 hour", tables: { schema } })
        yield* waitUntil(Effect.map(eventsOf(topic), (events) => events.length === 0))
        const again = Checkpoint.make({
          topic,
          groupId: "g",
          schema: Event,
          keyConfig: { field: "id" },
          tables: { schema },
          handle: (event) => Effect.succeed(Checkpoint.ack({ entityId: event.id, eventTime: new Date(0) }))
        })
        expect(yield* again.consume({ id: "s5", n: 5 }, metadataOf(topic, 5))).toBe("acknowledged")
      }))
  })
})
