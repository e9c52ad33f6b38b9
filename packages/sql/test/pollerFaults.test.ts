// Pollers publishing to Kafka (the dev broker over TCP) under faults: the poller killed mid-batch, its Postgres
// connections terminated mid-batch, the broker away, a message the broker refuses as too large.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { KafkaProducerBackend } from "@deimos/kafka"
import { Database, Poller } from "@deimos/sql"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { DatabaseIn, driverAt, readTopic, schemaFor, url, waitUntil } from "./outboxFixtures.js"
import { createOrders, Json, migrate, newTopic, orderRecords, ordersTable } from "./pollerFixtures.js"

const schema = schemaFor("poller_faults")
const here = path.dirname(fileURLToPath(import.meta.url))
const application = `deimos-poller-test-${process.pid}`

const Env = Layer.provideMerge(
  Layer.mergeAll(Json, Layer.effectDiscard(migrate(Poller.migrations({ schema }), schema))),
  DatabaseIn(schema)
)

/** A broker of its own and the Kafka producer backend on it. */
const kafka = (options: { readonly maxMessageBytes?: number } = {}) =>
  Layer.unwrapScoped(Effect.map(
    KafkaBroker.make({ port: 0, partitions: 3, ...options }),
    (broker) => KafkaProducerBackend.layer().pipe(Layer.provideMerge(driverAt(broker.port)))
  ))

/** The orders table `name`, its rows 1..count, and a record producer whose postProcess runs `hook` per batch. */
const setup = (name: string, count: number, hook: (batch: number) => Effect.Effect<void> = () => Effect.void) =>
  Effect.gen(function*() {
    yield* createOrders(schema, name)
    yield* Database.execute(sql.raw(`insert into "${schema}"."${name}" (id, customer_name, amount)
      select n, 'c' || n, n from generate_series(1, ${count}) n`))
    const topic = newTopic(name)
    let batches = 0
    const records = orderRecords(schema, topic, {
      postProcess: () => Effect.suspend(() => hook(++batches))
    }, ordersTable(schema, name))
    const options = (more: Partial<Poller.Options> = {}): Poller.Options => ({
      name,
      schema,
      producers: [records],
      // only writers of this table hold the window back (not other sessions on the shared test database)
      mode: { mode: "time", delayTime: 0, snapshotGuard: "tableWriters" },
      batchSize: 10,
      ...more
    })
    return { topic, options }
  })

const cursorId = (name: string) =>
  Effect.map(
    Database.execute(sql`select last_sent_id::int as id from ${sql.raw(`"${schema}".poll_info`)}
      where producer = ${name}`),
    (rows) => Number(rows[0]?.id ?? 0)
  )

const idsOf = (sent: ReadonlyArray<{ readonly value: Uint8Array | null }>) =>
  sent.map((m) => (JSON.parse(Buffer.from(m.value!).toString()) as { id: number }).id)

const every = (count: number) => Array.from({ length: count }, (_, i) => i + 1)

describe("Poller faults", () => {
  layer(Env, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("killed mid-batch (sent, cursor not saved): a new poller resumes from the cursor; every row at least once", () =>
      Effect.gen(function*() {
        const stuck = yield* Deferred.make<void>()
        const never = yield* Deferred.make<void>()
        // the 4th batch is sent to Kafka, then the poller hangs before saving its cursor, and is killed there
        const { options, topic } = yield* setup(
          "killed",
          100,
          (batch) =>
            batch === 4 ? Effect.zipRight(Deferred.succeed(stuck, undefined), Deferred.await(never)) : Effect.void
        )
        const first = yield* Effect.fork(Poller.poll(options({ workerId: "doomed" })))
        yield* Deferred.await(stuck)
        yield* Fiber.interrupt(first)
        // the cursor is the 3rd batch's last row
        expect(yield* cursorId("killed")).toBe(30)
        const result = yield* Poller.poll(options({ workerId: "heir" }))
        expect(result.published).toBe(70)
        expect(yield* cursorId("killed")).toBe(100)
        const sent = idsOf(yield* readTopic(topic, 110))
        expect([...new Set(sent)].sort((a, b) => a - b)).toEqual(every(100))
        // the killed batch again, nothing else twice
        expect(sent.length).toBe(110)
      }).pipe(Effect.provide(kafka())))

    it.scoped("a poller process SIGKILLed mid-poll: after its lease runs out another resumes from the cursor", () =>
      Effect.gen(function*() {
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 3 })
        const total = 300
        const { options, topic } = yield* setup("sigkilled", total)
        const child = spawn(process.execPath, ["--import", "tsx", path.join(here, "pollerChild.ts")], {
          env: {
            ...process.env,
            POLLER_SCHEMA: schema,
            POLLER_TABLE: "sigkilled",
            POLLER_TOPIC: topic,
            KAFKA_BROKER: broker.broker
          },
          stdio: "ignore"
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
        // killed once it has saved a few batches, while it still holds the lease
        yield* waitUntil(Effect.map(cursorId("sigkilled"), (id) => id >= 50))
        child.kill("SIGKILL")
        yield* Effect.async<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) resume(Effect.void)
          else child.once("exit", () => resume(Effect.void))
        })
        const saved = yield* cursorId("sigkilled")
        expect(saved).toBeLessThan(total)
        yield* Effect.gen(function*() {
          const heir = options({ workerId: "heir", leaseTimeout: "2 seconds" })
          // the dead process's lease holds until it runs out
          expect((yield* Poller.poll(heir)).leased).toBe(false)
          yield* waitUntil(Effect.map(Poller.poll(heir), (result) => result.leased))
          expect(yield* cursorId("sigkilled")).toBe(total)
          const sent = idsOf(yield* readTopic(topic, total))
          expect([...new Set(sent)].sort((a, b) => a - b)).toEqual(every(total))
          // what the killed process sent and did not save: at most its batch in flight, once more
          expect(sent.length - total).toBeLessThanOrEqual(10)
        }).pipe(Effect.provide(KafkaProducerBackend.layer().pipe(Layer.provideMerge(driverAt(broker.port)))))
      }))

    it.effect("its Postgres connections terminated mid-batch: the batch is tried again and the poll completes", () =>
      Effect.gen(function*() {
        const stuck = yield* Deferred.make<void>()
        const go = yield* Deferred.make<void>()
        const { options, topic } = yield* setup(
          "terminated",
          50,
          (batch) => batch === 2 ? Effect.zipRight(Deferred.succeed(stuck, undefined), Deferred.await(go)) : Effect.void
        )
        const own = Database.layer({ url, max: 4, applicationName: application })
        const running = yield* Effect.fork(
          Poller.poll(options({ backoff: Schedule.spaced("100 millis") })).pipe(Effect.provide(own))
        )
        yield* Deferred.await(stuck)
        const killed = yield* Database.execute(sql`select count(pg_terminate_backend(pid))::int as n
          from pg_stat_activity where application_name = ${application}`)
        expect(Number(killed[0].n)).toBeGreaterThan(0)
        yield* Deferred.succeed(go, undefined)
        const result = yield* Fiber.join(running)
        expect(result.skippedBatches).toBe(0)
        expect(yield* cursorId("terminated")).toBe(50)
        const sent = idsOf(yield* readTopic(topic, 50))
        expect([...new Set(sent)].sort((a, b) => a - b)).toEqual(every(50))
      }).pipe(Effect.provide(kafka())))

    it.effect("the broker away: the batch is tried again until it returns (never skipped), then all is sent", () =>
      Effect.gen(function*() {
        const first = yield* Scope.make()
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 3 }).pipe(Scope.extend(first))
        yield* Effect.gen(function*() {
          const { options, topic } = yield* setup("away", 30)
          let tries = 0
          const backoff = Schedule.spaced("200 millis").pipe(Schedule.tapOutput(() => Effect.sync(() => tries++)))
          yield* Scope.close(first, Exit.void)
          const running = yield* Effect.fork(Poller.poll(options({ backoff, retries: 0, leaseTimeout: "1 second" })))
          // waiting longer than its lease timeout: the lease is renewed meanwhile, so no other process takes over
          yield* waitUntil(Effect.sync(() => tries >= 8))
          expect(yield* cursorId("away")).toBe(0)
          expect((yield* Poller.poll(options({ workerId: "other", leaseTimeout: "1 second" }))).leased).toBe(false)
          const back = yield* Scope.make()
          yield* KafkaBroker.make({ port: broker.port, partitions: 3 }).pipe(Scope.extend(back))
          const result = yield* Fiber.join(running)
          expect(result).toMatchObject({ published: 30, skippedBatches: 0 })
          const sent = idsOf(yield* readTopic(topic, 30))
          expect([...new Set(sent)].sort((a, b) => a - b)).toEqual(every(30))
          yield* Scope.close(back, Exit.void)
        }).pipe(Effect.provide(KafkaProducerBackend.layer().pipe(Layer.provideMerge(driverAt(broker.port)))))
      }))

    it.effect("a message the broker refuses as too large is skipped and counted when skipTooLarge; the rest is sent", () =>
      Effect.gen(function*() {
        const { options, topic } = yield* setup("too_large", 20)
        yield* Database.execute(
          sql.raw(`update "${schema}".too_large set customer_name = repeat('x', 50000) where id = 7`)
        )
        const result = yield* Poller.poll(options({ skipTooLarge: true }))
        expect(result).toMatchObject({ invalid: 1, skippedBatches: 0 })
        const sent = idsOf(yield* readTopic(topic, 19))
        expect([...new Set(sent)].sort((a, b) => a - b)).toEqual(every(20).filter((n) => n !== 7))
        expect(yield* cursorId("too_large")).toBe(20)
      }).pipe(Effect.provide(kafka({ maxMessageBytes: 20_000 }))))
  })
})
