// The console in Debian's Chromium against real Postgres and the dev broker: the outbox view moving while a relay
// drains, consumer lag, problems shown on the page, and values escaped.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { Console } from "@deimos/console"
import { DeimosConfig, MockBackend, Producer, SchemaRef } from "@deimos/core"
import { KafkaJs } from "@deimos/kafka"
import { Database, Migrations, Outbox, OutboxRelay } from "@deimos/sql"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import { createServer } from "node:http"
import type { Page } from "playwright-core"
import { browser, on, pageOf } from "./browser.js"

const shots = process.env.CONSOLE_SCREENSHOTS
const snap = (page: Page, name: string) =>
  shots === undefined ? Effect.void : on(page, (p) => p.screenshot({ path: `${shots}/${name}.png`, fullPage: true }))

const schema = `console_${process.pid}_${Math.floor(Math.random() * 1e6)}`
const url = Redacted.make("postgres://postgres@127.0.0.1:5432/test")

const Db = Layer.scopedContext(Effect.gen(function*() {
  const context = yield* Layer.build(Database.layer({ url, max: 6 }))
  yield* Migrations.run(Outbox.migrations({ schema }), { table: `${schema}.deimos_migrations` }).pipe(
    Effect.provide(context)
  )
  yield* Effect.addFinalizer(() =>
    Database.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).pipe(Effect.provide(context), Effect.ignore)
  )
  return context
}))

const Widget = SchemaRef.fromSchema(Schema.Struct({ id: Schema.String, name: Schema.String }), {
  name: "Widget",
  namespace: "test"
})

/** Serves the console on a random port; returns its base address. */
const serve = (options: Console.Options) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      HttpServer.serve(Console.router(options)).pipe(
        Layer.provideMerge(NodeHttpServer.layer(() => createServer(), { port: 0, host: "127.0.0.1" }))
      )
    )
    const server = Effect.runSync(Effect.provide(HttpServer.HttpServer, context))
    const address = server.address as HttpServer.TcpAddress
    return `http://127.0.0.1:${address.port}`
  })

describe("the console", () => {
  layer(Layer.mergeAll(Db, MockBackend.layerMock, DeimosConfig.layer()), {
    timeout: 120_000,
    excludeTestServices: true
  })(
    (it) => {
      it.scoped("outbox: pending rows per topic move while a relay drains them", () =>
        Effect.gen(function*() {
          const topic = `widgets-${Math.random().toString(36).slice(2, 8)}`
          const widgets = Producer.make({ topic, schema: Widget, keyConfig: { field: "id" } })
          yield* Database.transaction(
            widgets.publishList(Array.from({ length: 300 }, (_, i) => ({ id: `w${i}`, name: `widget ${i}` })))
          ).pipe(Effect.provide(Outbox.layer({ schema })))
          const base = yield* serve({ outbox: { schema }, checkpoint: false, refreshMillis: 300 })
          const { errors, page } = yield* pageOf(yield* browser)
          yield* on(page, (p) => p.goto(`${base}/console/outbox`))
          expect(yield* on(page, (p) => p.locator(`[data-topic="${topic}"]`).textContent())).toBe("300")
          expect(yield* on(page, (p) => p.locator("h1").textContent())).toBe("Outbox")
          yield* snap(page, "outbox")
          const broker = yield* KafkaBroker.make({ port: 0, partitions: 3 })
          const relay = yield* Effect.fork(
            OutboxRelay.run({ schema, pollInterval: "100 millis", batchSize: 50 }).pipe(
              Effect.provide(KafkaJs.layer({ brokers: [broker.broker], clientId: "console-test", logLevel: "nothing" }))
            )
          )
          // the live section refreshes by itself: the topic's row leaves the table once drained
          yield* on(page, (p) => p.locator(`[data-topic="${topic}"]`).waitFor({ state: "detached", timeout: 60_000 }))
          expect(yield* on(page, (p) => p.getByTestId("outbox-total").textContent())).toBe("0")
          yield* Fiber.interrupt(relay)
          expect(errors).toEqual([])
        }))

      it.scoped("consumers: lag per group, refreshed live; a failing measure is a message on the page", () =>
        Effect.gen(function*() {
          const lag = yield* Ref.make<ReadonlyArray<Console.PartitionLag> | Error>([
            { groupId: "billing", topic: "orders", partition: 0, lag: 5 },
            { groupId: "billing", topic: "orders", partition: 1, lag: 2 }
          ])
          const measure = Effect.flatMap(Ref.get(lag), (v) => v instanceof Error ? Effect.fail(v) : Effect.succeed(v))
          const base = yield* serve({ outbox: false, checkpoint: false, lag: measure, refreshMillis: 200 })
          const { page } = yield* pageOf(yield* browser)
          yield* on(page, (p) => p.goto(`${base}/console`))
          expect(page.url()).toBe(`${base}/console/consumers`)
          expect(yield* on(page, (p) => p.locator(`[data-group="billing"]`).textContent())).toBe("7")
          yield* snap(page, "consumers")
          yield* Ref.set(lag, [{ groupId: "billing", topic: "orders", partition: 0, lag: 1 }])
          yield* on(page, (p) => p.locator(`[data-group="billing"]`, { hasText: /^1$/ }).waitFor({ timeout: 10_000 }))
          yield* Ref.set(lag, new Error("the broker is away"))
          yield* on(
            page,
            (p) =>
              p.locator("#status", { hasText: "Lag could not be measured: the broker is away" }).waitFor({
                timeout: 10_000
              })
          )
          const response = yield* on(page, (p) => p.goto(`${base}/console/consumers`))
          expect(response?.status()).toBe(503)
          expect(yield* on(page, (p) => p.getByRole("alert").textContent())).toBe(
            "Lag could not be measured: the broker is away"
          )
        }))
    }
  )
})
