// The outbox relay under load and faults: workers and processes sharing a topic, a worker killed, connections
// dropped, the broker away, topics and messages the broker refuses, a graceful stop.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { Instrumentation, Producer, SchemaRef } from "@deimos/core"
import { Database, Outbox, OutboxRelay } from "@deimos/sql"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Core, DatabaseIn, driverAt, pending, readTopic, schemaFor, waitUntil } from "./outboxFixtures.js"

const schema = schemaFor("relay")
const application = `deimos-relay-test-${process.pid}`
const Order = SchemaRef.fromSchema(Schema.Struct({ id: Schema.String, n: Schema.Number, pad: Schema.String }), {
  name: "Order",
  namespace: "test"
})
const newTopic = (name: string) => `${name}-${Math.random().toString(36).slice(2, 8)}`
const orders = (topic: string) => Producer.make({ topic, schema: Order, keyConfig: { field: "id" } })

/** Orders `from` to `from + count - 1` over `keys` keys (order n has key `k<n % keys>`), in one transaction. */
const insert = (topic: string, count: number, keys: number, from = 0) =>
  Database.transaction(
    orders(topic).publishList(
      Array.from({ length: count }, (_, i) => ({ id: `k${(from + i) % keys}`, n: from + i, pad: "" }))
    )
  ).pipe(Effect.provide(Outbox.layer({ schema })))

type Sent = ReadonlyArray<{ readonly key: Uint8Array | null; readonly value: Uint8Array | null }>

/** The order numbers each key was sent with, in the order Kafka holds them. */
const byKey = (sent: Sent) => {
  const out = new Map<string, Array<number>>()
  for (const m of sent) {
    const order = JSON.parse(Buffer.from(m.value!).toString()) as { id: string; n: number }
    const list = out.get(order.id) ?? []
    list.push(order.n)
    out.set(order.id, list)
  }
  return out
}

/** Every key's orders in order (after dropping repeats, which an at-least-once relay may send), none missing. */
const expectComplete = (sent: Sent, count: number, keys: number) => {
  const seen = byKey(sent)
  expect(seen.size).toBe(keys)
  let total = 0
  for (const ns of seen.values()) {
    const firsts = ns.filter((n, i) => ns.indexOf(n) === i)
    expect(firsts).toEqual([...firsts].sort((a, b) => a - b))
    total += firsts.length
  }
  expect(total).toBe(count)
}

const events: Array<Instrumentation.Event> = []
const Recorded = Layer.succeed(Instrumentation.Instrumentation, {
  emit: (event) => Effect.sync(() => void events.push(event))
})

/** A broker of this test's own, and the driver on it. */
const brokerWith = (options: Omit<KafkaBroker.Options, "port"> = {}) =>
  Layer.unwrapScoped(
    Effect.map(KafkaBroker.make({ port: 0, partitions: 6, ...options }), (broker) => driverAt(broker.port))
  )

const relay = (options: OutboxRelay.Options = {}) =>
  OutboxRelay.run({ schema, pollInterval: "200 millis", backoff: Schedule.spaced("200 millis"), ...options })

const leases = (topic: string) =>
  Database.execute(
    sql`select lane, locked_by, error, retries, retry_at > now() as backing_off from ${
      sql.raw(`"${schema}".kafka_topic_info`)
    } where topic = ${topic}`
  )

/** The lease rows of the lanes of `topic` that have rows waiting. */
const busyLeases = (topic: string) =>
  Database.execute(
    sql`select lane, locked_by, error, retries, retry_at > now() as backing_off from ${
      sql.raw(`"${schema}".kafka_topic_info`)
    } l where topic = ${topic} and exists (select 1 from ${
      sql.raw(`"${schema}".kafka_messages`)
    } m where m.topic = l.topic and m.lane = l.lane)`
  )

const here = path.dirname(fileURLToPath(import.meta.url))
const bin = path.resolve(here, "../bin/deimos-outbox-relay.js")

describe("the outbox relay", () => {
  layer(Layer.mergeAll(DatabaseIn(schema, { applicationName: application }), Core, Recorded), {
    timeout: 180_000,
    excludeTestServices: true
  })((it) => {
    it.effect("workers of two relays share one topic: every row is sent once, in order per key", () =>
      Effect.gen(function*() {
        const topic = newTopic("shared")
        const first = yield* Effect.fork(relay({ workerId: "first", concurrency: 2, batchSize: 100 }))
        const second = yield* Effect.fork(relay({ workerId: "second", concurrency: 2, batchSize: 100 }))
        // both relays are registered (so each holds its share of the lanes) before the rows arrive
        yield* waitUntil(Effect.map(
          Database.execute(sql.raw(`select count(*)::int as n from "${schema}".kafka_relays`)),
          (rows) => Number(rows[0].n) >= 2
        ))
        yield* insert(topic, 20_000, 500)
        yield* waitUntil(Effect.map(pending(schema, topic), (n) => n === 0))
        yield* Fiber.interrupt(first)
        yield* Fiber.interrupt(second)
        const sent = yield* readTopic(topic, 20_000)
        expect(sent).toHaveLength(20_000)
        expectComplete(sent, 20_000, 500)
        const workers = new Set(
          events.flatMap((e) => e._tag === "OutboxProduce" && e.topic === topic ? [e.worker.split("/")[0]] : [])
        )
        expect([...workers].sort()).toEqual(["first", "second"])
        expect((yield* leases(topic)).every((lease) => lease.locked_by === null)).toBe(true)
      }).pipe(Effect.provide(brokerWith())))

    it.effect("a compacted topic sends the last row per key of each batch and deletes the rows it replaced", () =>
      Effect.gen(function*() {
        const compactedTopic = newTopic("compacted")
        const plainTopic = newTopic("plain")
        // 30 orders over 3 keys on each topic: order n has key k<n % 3>, so k0's last is 27, k1's 28, k2's 29
        yield* insert(compactedTopic, 30, 3)
        yield* insert(plainTopic, 30, 3)
        const running = yield* Effect.fork(relay({ compactTopics: [compactedTopic], concurrency: 1 }))
        yield* waitUntil(
          Effect.map(
            Effect.all([pending(schema, compactedTopic), pending(schema, plainTopic)]),
            ([a, b]) => a + b === 0
          )
        )
        yield* Fiber.interrupt(running)
        // one batch of 30 rows: one message per key, its last
        const compacted = yield* readTopic(compactedTopic, 3)
        expect(compacted).toHaveLength(3)
        expect(byKey(compacted)).toEqual(new Map([["k0", [27]], ["k1", [28]], ["k2", [29]]]))
        // the topic not configured keeps every row
        const plain = yield* readTopic(plainTopic, 30)
        expect(plain).toHaveLength(30)
        expectComplete(plain, 30, 3)
        const produced = events.filter((e) => e._tag === "OutboxProduce" && e.topic === compactedTopic)
        expect(produced.reduce((n, e) => n + (e._tag === "OutboxProduce" ? e.count : 0), 0)).toBe(3)
      }).pipe(Effect.provide(brokerWith())))

    it.effect("compaction is per batch: each batch of a compacted topic sends its keys' last rows, in order", () =>
      Effect.gen(function*() {
        const topic = newTopic("compacted-batches")
        yield* insert(topic, 30, 3)
        const running = yield* Effect.fork(relay({ compactTopics: [topic], concurrency: 1, batchSize: 10 }))
        yield* waitUntil(Effect.map(pending(schema, topic), (n) => n === 0))
        yield* Fiber.interrupt(running)
        const sent = yield* readTopic(topic, 3)
        const seen = byKey(sent)
        // every key ends at its last order, in increasing order, and fewer messages than rows were sent
        expect(new Map([...seen].map(([key, ns]) => [key, ns[ns.length - 1]]))).toEqual(
          new Map([["k0", 27], ["k1", 28], ["k2", 29]])
        )
        for (const ns of seen.values()) expect(ns).toEqual([...ns].sort((a, b) => a - b))
        expect(sent.length).toBeLessThan(30)
        expect(sent.length).toBeGreaterThanOrEqual(3)
      }).pipe(Effect.provide(brokerWith())))

    it.scoped("a relay process killed mid-drain: another takes over after the lease timeout and sends the rest", () =>
      Effect.gen(function*() {
        const topic = newTopic("killed")
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 6 })
        const total = 30_000
        const batchSize = 200
        yield* insert(topic, total, 1000)
        const child = spawn(process.execPath, [bin], {
          env: {
            ...process.env,
            DATABASE_URL: "postgres://postgres@127.0.0.1:5432/test",
            KAFKA_BROKERS: broker.broker,
            KAFKA_LOG_LEVEL: "nothing",
            OUTBOX_SCHEMA: schema,
            OUTBOX_WORKER_ID: "doomed",
            OUTBOX_BATCH_SIZE: String(batchSize),
            OUTBOX_CONCURRENCY: "2",
            OUTBOX_LEASE_TIMEOUT: "3 seconds"
          },
          stdio: "ignore"
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
        // killed once it has sent a few batches
        yield* waitUntil(Effect.map(pending(schema, topic), (n) => n <= total - 5 * batchSize))
        child.kill("SIGKILL")
        yield* Effect.async<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) resume(Effect.void)
          else child.once("exit", () => resume(Effect.void))
        })
        const left = yield* pending(schema, topic)
        expect(left).toBeGreaterThan(0)
        const held = (yield* leases(topic)).filter((lease) => String(lease.locked_by).startsWith("doomed/"))

        yield* Effect.gen(function*() {
          const takeover = yield* Effect.fork(relay({ workerId: "heir", leaseTimeout: "3 seconds", batchSize }))
          yield* waitUntil(Effect.map(pending(schema, topic), (n) => n === 0))
          yield* Fiber.interrupt(takeover)
          const sent = yield* readTopic(topic, total)
          expectComplete(sent, total, 1000)
          // what the killed relay sent and had not deleted yet is sent again: at most one batch per worker
          expect(sent.length - total).toBeLessThanOrEqual(2 * batchSize)
          expect(held.length).toBeGreaterThan(0)
          // the lanes it held went to the heir only once their lease ran out
          const heirLanes = new Set(
            events.flatMap((e) =>
              e._tag === "OutboxProduce" && e.topic === topic && e.worker.startsWith("heir/") ? e.lanes : []
            )
          )
          for (const lease of held) expect(heirLanes.has(Number(lease.lane))).toBe(true)
        }).pipe(Effect.provide(driverAt(broker.port)))
      }))

    it.effect("its Postgres connections terminated: the relay reconnects and sends what comes next", () =>
      Effect.gen(function*() {
        const topic = newTopic("terminated")
        const running = yield* Effect.fork(relay())
        yield* insert(topic, 500, 50)
        yield* waitUntil(Effect.map(pending(schema, topic), (n) => n === 0))
        const killed = yield* Database.execute(sql`select count(pg_terminate_backend(pid))::int as n
          from pg_stat_activity where application_name = ${application} and pid <> pg_backend_pid()`)
        expect(Number(killed[0].n)).toBeGreaterThan(0)
        // the caller's next transaction may meet a connection that is going: it is retriable
        yield* insert(topic, 500, 50, 500).pipe(
          Effect.retry({
            while: (e) => "retriable" in e && e.retriable === true,
            schedule: Schedule.spaced("100 millis"),
            times: 20
          })
        )
        yield* waitUntil(Effect.map(pending(schema, topic), (n) => n === 0))
        yield* Fiber.interrupt(running)
        const sent = yield* readTopic(topic, 1000)
        expectComplete(sent, 1000, 50)
      }).pipe(Effect.provide(brokerWith())))

    it.effect("the broker down: rows stay in the table until it returns, then all are sent", () =>
      Effect.gen(function*() {
        const topic = newTopic("away")
        const firstScope = yield* Scope.make()
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 6 }).pipe(Scope.extend(firstScope))
        yield* Effect.gen(function*() {
          const running = yield* Effect.fork(relay())
          yield* Effect.sleep("500 millis")
          yield* Scope.close(firstScope, Exit.void)
          yield* insert(topic, 300, 30)
          yield* Effect.sleep("3 seconds")
          expect(yield* pending(schema, topic)).toBe(300)
          const back = yield* Scope.make()
          yield* KafkaBroker.make({ port: broker.port, partitions: 6 }).pipe(Scope.extend(back))
          yield* waitUntil(Effect.map(pending(schema, topic), (n) => n === 0))
          yield* Fiber.interrupt(running)
          const sent = yield* readTopic(topic, 300)
          expectComplete(sent, 300, 30)
          yield* Scope.close(back, Exit.void)
        }).pipe(Effect.provide(driverAt(broker.port)))
      }))

    it.effect("a topic the broker refuses backs its lanes off with a logged error; other topics keep flowing", () =>
      Effect.gen(function*() {
        const refused = newTopic("bad topic!")
        const good = newTopic("good")
        const warnings: Array<string> = []
        const logger = Logger.make(({ message }) => {
          warnings.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
        })
        const running = yield* Effect.fork(
          relay({ backoff: Schedule.spaced("1 minute") }).pipe(
            Effect.provide(Logger.replace(Logger.defaultLogger, logger))
          )
        )
        yield* insert(refused, 20, 4)
        yield* insert(good, 200, 20)
        yield* waitUntil(Effect.map(pending(schema, good), (n) => n === 0))
        yield* waitUntil(
          Effect.map(busyLeases(refused), (rows) => rows.length > 0 && rows.every((lease) => lease.error === true))
        )
        expect(yield* pending(schema, refused)).toBe(20)
        for (const lease of yield* busyLeases(refused)) {
          expect(lease.locked_by).toBeNull()
          expect(lease.backing_off).toBe(true)
          expect(Number(lease.retries)).toBeGreaterThanOrEqual(1)
        }
        expect(warnings.some((w) => w.includes(refused) && w.includes("backs off"))).toBe(true)
        // more rows of the good topic still flow while the refused one backs off
        yield* insert(good, 200, 20, 200)
        yield* waitUntil(Effect.map(pending(schema, good), (n) => n === 0))
        yield* Fiber.interrupt(running)
        expectComplete(yield* readTopic(good, 400), 400, 20)
        yield* Database.execute(sql`delete from ${sql.raw(`"${schema}".kafka_messages`)} where topic = ${refused}`)
      }).pipe(Effect.provide(brokerWith())))

    it.effect("a batch larger than the broker takes is cut; a message that can never be sent is removed and reported", () =>
      Effect.gen(function*() {
        const topic = newTopic("large")
        // the broker takes record batches of at most 20 kB; every order here is about 1 kB, the 50th about 50 kB
        yield* Database.transaction(
          orders(topic).publishList(
            Array.from({ length: 100 }, (_, n) => ({ id: `k${n % 5}`, n, pad: "x".repeat(n === 50 ? 50_000 : 1000) }))
          )
        ).pipe(Effect.provide(Outbox.layer({ schema })))
        const big = yield* Database.execute(sql`select id::text as id from ${sql.raw(`"${schema}".kafka_messages`)}
          where topic = ${topic} and octet_length(message) > 40000`)
        expect(big).toHaveLength(1)
        const running = yield* Effect.fork(relay())
        yield* waitUntil(Effect.map(pending(schema, topic), (n) => n === 0))
        yield* Fiber.interrupt(running)
        const sent = yield* readTopic(topic, 99)
        // nothing but the large one missing, order per key kept. Kafka answers a produce request per partition and
        // kafkajs reports the request as failed, so what the refused request wrote to its other partitions is sent
        // again: at most that request once more, never a part that succeeded on its own
        expect(sent.length).toBeGreaterThanOrEqual(99)
        expect(sent.length).toBeLessThanOrEqual(99 + 100)
        const seen = byKey(sent)
        for (const [key, ns] of seen) {
          const expected = Array.from({ length: 100 }, (_, n) => n).filter((n) => `k${n % 5}` === key && n !== 50)
          expect(ns.filter((n, i) => ns.indexOf(n) === i)).toEqual(expected)
        }
        const dropped = events.filter((e) => e._tag === "OutboxDropped" && e.topic === topic)
        expect(dropped).toHaveLength(1)
        expect(dropped[0]._tag === "OutboxDropped" && dropped[0].ids).toEqual([String(big[0].id)])
      }).pipe(Effect.provide(brokerWith({ maxMessageBytes: 20_000 }))))

    it.effect("closing its scope: the batch in flight finishes, leases are given back, nothing is sent twice", () =>
      Effect.gen(function*() {
        const topic = newTopic("stopped")
        yield* insert(topic, 20_000, 200)
        const running = yield* Effect.fork(relay({ batchSize: 100, concurrency: 2 }))
        yield* waitUntil(Effect.map(pending(schema, topic), (n) => n < 19_000))
        yield* Fiber.interrupt(running)
        const left = yield* pending(schema, topic)
        expect(left).toBeGreaterThan(0)
        expect((yield* leases(topic)).every((lease) => lease.locked_by === null)).toBe(true)
        // every row is in exactly one place: sent (once) or still pending
        const sent = yield* readTopic(topic, 20_000 - left)
        expect(sent).toHaveLength(20_000 - left)
        const restart = yield* Effect.fork(relay())
        yield* waitUntil(Effect.map(pending(schema, topic), (n) => n === 0))
        yield* Fiber.interrupt(restart)
        const all = yield* readTopic(topic, 20_000)
        expect(all).toHaveLength(20_000)
        expectComplete(all, 20_000, 200)
      }).pipe(Effect.provide(brokerWith())))
  })
})
