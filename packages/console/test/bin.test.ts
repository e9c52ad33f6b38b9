// The deimos-console process: serves the pages from its environment's settings, stops on SIGTERM with exit 0, and a
// bad setting stops it at start with a message naming the variable.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { CheckpointTables } from "@deimos/checkpoint"
import { DeimosConfig, MockBackend, Producer, SchemaRef } from "@deimos/core"
import { KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { Database, Migrations } from "@deimos/sql"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { spawn } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const schema = `console_bin_${process.pid}_${Math.floor(Math.random() * 1e6)}`
const url = "postgres://postgres@127.0.0.1:5432/test"
const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../bin/deimos-console.js")

const Db = Layer.scopedContext(Effect.gen(function*() {
  const context = yield* Layer.build(Database.layer({ url: Redacted.make(url), max: 2 }))
  yield* Migrations.run(CheckpointTables.migrations({ schema }), { table: `${schema}.deimos_migrations` }).pipe(
    Effect.provide(context)
  )
  yield* Effect.addFinalizer(() =>
    Database.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).pipe(Effect.provide(context), Effect.ignore)
  )
  return context
}))

const Widget = SchemaRef.fromSchema(Schema.Struct({ id: Schema.String }), { name: "Widget", namespace: "bin" })

const freePort = Effect.async<number>((resume) => {
  const server = net.createServer().listen(0, "127.0.0.1", () => {
    const port = (server.address() as net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Runs the bin with `env`; answers its exit code and output once it ends, and a way to signal it. */
const start = (env: Record<string, string>) =>
  Effect.sync(() => {
    const child = spawn(process.execPath, [bin], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (d) => output += String(d))
    child.stderr.on("data", (d) => output += String(d))
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    return { child, output: () => output, exited: Effect.promise(() => exited) }
  }).pipe(
    // never left running (it holds connections to the test's broker, whose close waits for them)
    Effect.tap((run) => Effect.addFinalizer(() => Effect.sync(() => run.child.kill("SIGKILL"))))
  )

const get = (href: string) =>
  Effect.tryPromise(async () => {
    const response = await fetch(href)
    return { status: response.status, text: await response.text() }
  })

describe("deimos-console", () => {
  layer(Db, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.scoped("serves the console from its settings (lag topics with DEIMOS_TOPIC_PREFIX); SIGTERM stops it with exit 0", () =>
      Effect.gen(function*() {
        const broker = yield* KafkaBroker.make({ port: 0, partitions: 1 })
        // the group's topic (stage.widgets, the prefix of the environment) with three messages, none consumed: a lag of 3
        yield* Producer.make({ topic: "widgets", schema: Widget, keyConfig: { field: "id" } })
          .publishList([{ id: "a" }, { id: "b" }, { id: "c" }])
          .pipe(
            Effect.provide(KafkaProducerBackend.layer()),
            Effect.provide(KafkaJs.layer({ brokers: [broker.broker], clientId: "console-bin", logLevel: "nothing" })),
            Effect.provide(Layer.merge(MockBackend.layerMock, DeimosConfig.layer({ topicPrefix: "stage." })))
          )
        const port = yield* freePort
        const run = yield* start({
          DATABASE_URL: url,
          CHECKPOINT_API_PORT: String(port),
          CHECKPOINT_API_HOST: "127.0.0.1",
          CHECKPOINT_SCHEMA: schema,
          CONSOLE_OUTBOX: "false",
          CONSOLE_LAG: "audit:widgets",
          DEIMOS_TOPIC_PREFIX: "stage.",
          KAFKA_BROKERS: broker.broker,
          KAFKA_LOG_LEVEL: "nothing"
        })
        const page = yield* get(`http://127.0.0.1:${port}/console/consumers`).pipe(
          Effect.retry({ times: 150, schedule: Schedule.spaced("100 millis") }),
          Effect.catchAll(() => Effect.succeed({ status: 0, text: run.output() }))
        )
        expect(page.status, page.text).toBe(200)
        expect(page.text).toContain(`<span data-group="audit">3</span>`)
        expect((yield* get(`http://127.0.0.1:${port}/console/failures`)).status).toBe(200)
        expect((yield* get(`http://127.0.0.1:${port}/ping`)).text).toBe("PONG")
        run.child.kill("SIGTERM")
        expect(yield* run.exited).toBe(0)
      }))

    it.scoped("a bad setting stops it at start, naming the variable", () =>
      Effect.gen(function*() {
        const run = yield* start({ DATABASE_URL: url, CONSOLE_LAG: "no-topic-here" })
        const code = yield* run.exited
        expect(code).not.toBe(0)
        expect(run.output()).toContain("CONSOLE_LAG wants group:topic pairs")
      }))
  })
})
