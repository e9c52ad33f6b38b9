// Shared by the checkpoint tests: a Postgres schema of the test file's own with the checkpoint tables and a table
// for the handlers' own writes, the dev broker, the events API on a free port, and small readers.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { CheckpointTables, EventsApi, EventsServer } from "@deimos/checkpoint"
import type { Checkpoint } from "@deimos/checkpoint"
import { DeimosConfig, MockBackend, Producer, SchemaRef } from "@deimos/core"
import { KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { Database, Migrations } from "@deimos/sql"
import * as HttpServer from "@effect/platform/HttpServer"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"

export const url = Redacted.make("postgres://postgres@127.0.0.1:5432/test")

/** A schema name of this file's own (files run in parallel on one database). */
export const schemaFor = (file: string) => `${file}_${process.pid}_${Math.floor(Math.random() * 1e6)}`.toLowerCase()

/** The database with the checkpoint tables and `things` (the handlers' writes) in `schema`, dropped at the end. */
export const DatabaseIn = (schema: string) =>
  Layer.scopedContext(Effect.gen(function*() {
    const context = yield* Layer.build(Database.layer({ url, max: 6, applicationName: schema }))
    yield* Migrations.run(CheckpointTables.migrations({ schema }), { table: `${schema}.deimos_migrations` }).pipe(
      Effect.provide(context)
    )
    yield* Database.execute(sql.raw(`create table "${schema}".things (id text primary key, n int not null)`)).pipe(
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

/** Rows of a table of `schema` (ordered by their first column). */
export const rows = (schema: string, table: string) =>
  Database.execute(sql.raw(`select * from "${schema}"."${table}" order by 1`))

/** Writes a `things` row (the handler's own write). */
export const writeThing = (schema: string, id: string, n: number) =>
  Database.execute(sql`insert into ${sql.raw(`"${schema}".things`)} (id, n) values (${id}, ${n})`)

export const Event = SchemaRef.fromSchema(
  Schema.Struct({ id: Schema.String, n: Schema.Number }),
  { name: "Event", namespace: "checkpoint.test" }
)

export const Core = Layer.merge(
  MockBackend.layerMock,
  DeimosConfig.layer({ backoff: { min: "20 millis", max: "200 millis" } })
)

/** The dev broker and the kafkajs driver on it, with the core's settings and the mock schema backend. */
export const Kafka = Layer.unwrapScoped(
  Effect.map(
    KafkaBroker.make({ port: 0, partitions: 1 }),
    (broker) =>
      KafkaJs.layer({ brokers: [`127.0.0.1:${broker.port}`], clientId: "checkpoint-test", logLevel: "nothing" })
  )
).pipe(Layer.provideMerge(Core))

/** Publishes events to a topic, in order, in one partition. */
export const publish = (topic: string, events: ReadonlyArray<{ readonly id: string; readonly n: number }>) =>
  Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
    .publishList(events.map((e) => Producer.envelope(e, { partitionKey: "p" })))
    .pipe(Effect.provide(KafkaProducerBackend.layer()))

/** Repeats `check` until it holds, for at most 30 s (then fails saying so, rather than hanging the test). */
export const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("25 millis") }).pipe(
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("the condition did not hold within 30 s") })
  )

/** Metadata of a message as the runtime would hand it over. */
export const metadataOf = (topic: string, offset: number, headers: Record<string, string> = {}) => ({
  consumer: `g:${topic}`,
  topic,
  partition: 0,
  offset: String(offset),
  key: null,
  headers,
  timestamp: new Date(0),
  retryCount: 0
})

export const token = "s3cret-token"

/** The events API on a free port of this machine, with the checkpoints given; answers its base URL. */
export const serve = <const Cs extends ReadonlyArray<Checkpoint.Any>>(
  schema: string,
  checkpoints: Cs,
  routes?: Layer.Layer<never, never, EventsApi.Token>
) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      EventsServer.layer(
        { port: 0, host: "127.0.0.1", token: Redacted.make(token), tables: { schema }, checkpoints },
        routes
      )
    )
    const address = (yield* Effect.provide(HttpServer.HttpServer, context)).address
    if (address._tag !== "TcpAddress") return yield* Effect.die(new Error("not a TCP server"))
    return `http://127.0.0.1:${address.port}`
  })

/** An HTTP request over the network: the status and the body (JSON when it is JSON). */
export const http = (method: string, href: string, options: { readonly bearer?: string } = {}) =>
  Effect.tryPromise(async () => {
    const response = await fetch(href, {
      method,
      headers: options.bearer === undefined ? {} : { authorization: `Bearer ${options.bearer}` }
    })
    const text = await response.text()
    const type = response.headers.get("content-type") ?? ""
    return { status: response.status, body: type.includes("json") ? JSON.parse(text) as unknown : text }
  })

export { EventsApi }
