// events-api and console as subprocesses over the test Postgres (a schema of this file's own, dropped at the end),
// the console's lag view against the dev broker.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { DeimosConfig, JsonBackend, Producer, SchemaRef } from "@deimos/core"
import { KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { Database } from "@deimos/sql"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { databaseUrl, run, runHere, schemaFor, start, waitFor } from "./helpers.js"

const schema = schemaFor("server")

const Test = Layer.scopedContext(Effect.gen(function*() {
  const context = yield* Layer.build(Database.layer({ url: Redacted.make(databaseUrl), max: 4 }))
  yield* Effect.addFinalizer(() =>
    Database.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).pipe(Effect.provide(context), Effect.ignore)
  )
  return context
}))

const request = (href: string, init: RequestInit = {}) =>
  Effect.tryPromise(async () => {
    const response = await fetch(href, init)
    return { status: response.status, text: await response.text() }
  })

/** The address the server logged it listens on. */
const addressOf = (label: string, p: { readonly stderr: () => string }) =>
  new RegExp(`${label} on (http://127\\.0\\.0\\.1:\\d+)`).exec(p.stderr())?.[1] ?? ""

const storeFailure = Database.execute(sql.raw(
  `insert into "${schema}".checkpoint_failures (topic, group_id, checksum, metadata, error_class, error_message,
    error_backtrace) values ('orders', 'billing', 'abc', '{}'::jsonb, 'Boom', 'it failed', '') returning id`
))

describe("deimos events-api and console", () => {
  layer(Test, { timeout: 90_000, excludeTestServices: true })((it) => {
    it.scoped("migrate applies every set by default; events-api serves the tables, guards deletes with the token", () =>
      Effect.gen(function*() {
        const migrated = yield* run(["migrate", "--schema", schema], { DATABASE_URL: databaseUrl })
        expect(migrated.code).toBe(0)
        expect(migrated.stdout).toContain(
          `Applied ${schema}.outbox_1, ${schema}.checkpoint_1, ${schema}.poller_1`
        )
        const p = yield* start(
          ["events-api", "--port", "0", "--host", "127.0.0.1", "--schema", schema, "--token-env", "MY_API_TOKEN"],
          { DATABASE_URL: databaseUrl, MY_API_TOKEN: "s3cret", DEIMOS_PROGRESS_INTERVAL: "100 millis" }
        )
        yield* waitFor("the address logged", () => addressOf("Events API", p) !== "", p)
        const base = addressOf("Events API", p)
        expect(JSON.parse((yield* request(`${base}/v1/failures/count`)).text)).toEqual({ count: 0 })
        const id = String((yield* storeFailure)[0].id)
        expect(JSON.parse((yield* request(`${base}/v1/failures/count`)).text)).toEqual({ count: 1 })
        yield* waitFor("a progress line with the failure", () => p.stderr().includes("1 failures stored"), p)
        // the token came from the variable --token-env named
        expect((yield* request(`${base}/v1/failures/${id}`, { method: "DELETE" })).status).toBe(401)
        const deleted = yield* request(`${base}/v1/failures/${id}`, {
          method: "DELETE",
          headers: { authorization: "Bearer s3cret" }
        })
        expect(deleted.status).toBe(200)
        expect(JSON.parse((yield* request(`${base}/v1/failures/count`)).text)).toEqual({ count: 0 })
        yield* p.signal("SIGTERM")
        expect(yield* p.exited).toBe(0)
      }))

    it.effect("events-api: a token variable not set, a bad port, no database: exit 2 naming the fix", () =>
      Effect.gen(function*() {
        const token = yield* run(["events-api", "--token-env", "NO_SUCH_TOKEN"], { DATABASE_URL: databaseUrl })
        expect(token.code).toBe(2)
        expect(token.stderr).toContain("NO_SUCH_TOKEN is not set")
        const port = yield* runHere(["events-api", "--port", "lots"], { DATABASE_URL: databaseUrl })
        expect(port.code).toBe(2)
        expect(port.stderr).toContain("--port wants a port number from 0 to 65535")
        const env = yield* runHere(["events-api"], { DATABASE_URL: databaseUrl, CHECKPOINT_API_PORT: "lots" })
        expect(env.code).toBe(2)
        expect(env.stderr).toContain("CHECKPOINT_API_PORT is invalid")
        expect(env.stderr).toContain("pass --port")
        const database = yield* runHere(["events-api"])
        expect(database.code).toBe(2)
        expect(database.stderr).toContain("DATABASE_URL is not set: set DATABASE_URL or pass --database-url")
      }))

    it.scoped("console serves the pages beside the API, with the lag of the groups named; SIGTERM exits 0", () =>
      Effect.gen(function*() {
        expect((yield* runHere(["migrate", "--set", "outbox", "--schema", schema, "--database-url", databaseUrl])).code)
          .toBe(0)
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 1 })
        const topic = `cli-console-${process.pid}`
        const Widget = SchemaRef.fromSchema(Schema.Struct({ id: Schema.String }), { name: "Widget" })
        yield* Producer.make({ topic, schema: Widget, keyConfig: { field: "id" } })
          .publishList([{ id: "a" }, { id: "b" }, { id: "c" }])
          .pipe(
            Effect.provide(KafkaProducerBackend.layer()),
            Effect.provide(KafkaJs.layer({ brokers: [broker.broker], clientId: "cli-test", logLevel: "nothing" })),
            Effect.provide(Layer.merge(JsonBackend.layer, DeimosConfig.layer()))
          )
        const p = yield* start(
          [
            "console",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--schema",
            schema,
            "--migrate",
            "--outbox-schema",
            schema,
            "--lag",
            `audit:${topic}`,
            "--brokers",
            broker.broker
          ],
          { DATABASE_URL: databaseUrl, KAFKA_LOG_LEVEL: "nothing" }
        )
        yield* waitFor("the address logged", () => addressOf("Console", p) !== "", p)
        const base = addressOf("Console", p)
        const consumers = yield* request(`${base}/console/consumers`)
        expect(consumers.status, consumers.text).toBe(200)
        expect(consumers.text).toContain(`<span data-group="audit">3</span>`)
        expect((yield* request(`${base}/console/failures`)).status).toBe(200)
        expect((yield* request(`${base}/console/outbox`)).status).toBe(200)
        // the events API on the same server
        expect(JSON.parse((yield* request(`${base}/v1/failures/count`)).text)).toEqual({ count: 0 })
        yield* p.signal("SIGTERM")
        expect(yield* p.exited).toBe(0)
      }))

    it.effect("console: a bad --lag pair, --lag without brokers: exit 2 naming the fix", () =>
      Effect.gen(function*() {
        const pair = yield* run(["console", "--lag", "no-topic-here"], { DATABASE_URL: databaseUrl })
        expect(pair.code).toBe(2)
        expect(pair.stderr).toContain("--lag (or CONSOLE_LAG) wants group:topic pairs")
        const env = yield* runHere(["console"], { DATABASE_URL: databaseUrl, CONSOLE_LAG: "billing:" })
        expect(env.code).toBe(2)
        expect(env.stderr).toContain("got \"billing:\"")
        const brokers = yield* runHere(["console", "--lag", "billing:orders"], { DATABASE_URL: databaseUrl })
        expect(brokers.code).toBe(2)
        expect(brokers.stderr).toContain("KAFKA_BROKERS is not set: set KAFKA_BROKERS or pass --brokers")
      }))
  })
})
