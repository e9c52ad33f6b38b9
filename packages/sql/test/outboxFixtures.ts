// Shared by the outbox tests: a Postgres schema of the test file's own, the dev broker, and readers of both.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { DeimosConfig, MockBackend } from "@deimos/core"
import { KafkaDriver, KafkaJs } from "@deimos/kafka"
import { Database, Migrations, Outbox } from "@deimos/sql"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as net from "node:net"

export const url = Redacted.make("postgres://postgres@127.0.0.1:5432/test")

/** A schema name of this file's own (files run in parallel on one database). */
export const schemaFor = (file: string) => `${file}_${process.pid}_${Math.floor(Math.random() * 1e6)}`.toLowerCase()

/** The database with the outbox migrated into `schema`, which is dropped when the layer closes. */
export const DatabaseIn = (schema: string, options: Partial<Database.Options> = {}) =>
  Layer.scopedContext(Effect.gen(function*() {
    const context = yield* Layer.build(Database.layer({ url, max: 8, ...options }))
    yield* Migrations.run(Outbox.migrations({ schema }), { table: `${schema}.deimos_migrations` }).pipe(
      Effect.provide(context)
    )
    yield* Effect.addFinalizer(() =>
      Database.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).pipe(
        Effect.provide(context),
        Effect.ignore
      )
    )
    return context
  }))

/** The kafkajs driver on a broker at `port` of this machine. */
export const driverAt = (port: number) =>
  KafkaJs.layer({ brokers: [`127.0.0.1:${port}`], clientId: "outbox-test", logLevel: "nothing" })

/** The core's settings and the mock schema backend. */
export const Core = Layer.merge(MockBackend.layerMock, DeimosConfig.layer())

/** The dev broker and the kafkajs driver on it, with the core's settings and the mock schema backend. */
export const Kafka = Layer.unwrapScoped(
  Effect.map(KafkaBroker.make({ port: 0, partitions: 6 }), (broker) => driverAt(broker.port))
).pipe(Layer.merge(Core))

/** Rows waiting in the outbox of `schema` (for a topic, or all). */
export const pending = (schema: string, topic?: string) =>
  Effect.map(
    Database.execute(
      topic === undefined
        ? sql.raw(`select count(*)::int as n from "${schema}".kafka_messages`)
        : sql`select count(*)::int as n from ${sql.raw(`"${schema}".kafka_messages`)} where topic = ${topic}`
    ),
    (rows) => Number(rows[0].n)
  ).pipe(
    // a connection just killed (by a test) can fail the next query once with a retriable error
    Effect.retry({ times: 3, while: (error) => error.retriable })
  )

/** Every message of a Kafka topic, once `count` are there (within 30 s). */
export const readTopic = (topic: string, count: number) =>
  Effect.scoped(Effect.gen(function*() {
    const admin = yield* (yield* KafkaDriver.KafkaDriver).admin
    const offsets = yield* admin.topicOffsets(topic).pipe(
      Effect.filterOrFail(
        (all) => all.reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0) >= count,
        () => new Error(`fewer than ${count} messages on ${topic} yet`)
      ),
      Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.compose(Schedule.recurs(300))))
    )
    return yield* admin.read(topic, offsets.map((o) => ({ partition: o.partition, from: o.low, until: o.high })))
  }))

/** Repeats `check` until it holds, for at most a minute (then fails saying so, rather than hanging the test). */
export const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("50 millis") }).pipe(
    Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("the condition did not hold within 60 s") })
  )

/**
 * A TCP proxy to the test Postgres that can be cut: `cut` closes it and every connection through it, so the database
 * is out of reach for a pool built through it.
 */
export const proxy = Effect.acquireRelease(
  Effect.async<{ readonly port: number; readonly cut: Effect.Effect<void> }>((resume) => {
    const sockets = new Set<net.Socket>()
    const server = net.createServer((client) => {
      const upstream = net.connect(5432, "127.0.0.1")
      for (const socket of [client, upstream]) {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => socket.destroy())
      }
      client.pipe(upstream).pipe(client)
    })
    const cut = Effect.sync(() => {
      server.close()
      for (const socket of sockets) socket.destroy()
    })
    server.listen(
      0,
      "127.0.0.1",
      () => resume(Effect.succeed({ port: (server.address() as net.AddressInfo).port, cut }))
    )
  }),
  (p) => p.cut
)
