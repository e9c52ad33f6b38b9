// Failures and events in the console, in Debian's Chromium: seeded by a real checkpointed consumer over the dev
// broker, served beside the events API (one server, one token); filter, inspect, retry, delete, bulk retry; bad
// filters, unknown ids and a missing token as messages on the page; markup in payloads shown, never run.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { Checkpoint, CheckpointTables, EventsServer } from "@deimos/checkpoint"
import { Console } from "@deimos/console"
import { DeimosConfig, MockBackend, Producer, SchemaRef } from "@deimos/core"
import { Consumers, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { Database, Migrations } from "@deimos/sql"
import * as HttpServer from "@effect/platform/HttpServer"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type { Page } from "playwright-core"
import { browser, on, pageOf } from "./browser.js"

const schema = `console_failures_${process.pid}_${Math.floor(Math.random() * 1e6)}`
const url = Redacted.make("postgres://postgres@127.0.0.1:5432/test")
const token = "console-test-token"
const topic = "widgets"
const shots = process.env.CONSOLE_SCREENSHOTS

const Db = Layer.scopedContext(Effect.gen(function*() {
  const context = yield* Layer.build(Database.layer({ url, max: 6 }))
  yield* Migrations.run(CheckpointTables.migrations({ schema }), { table: `${schema}.deimos_migrations` }).pipe(
    Effect.provide(context)
  )
  yield* Effect.addFinalizer(() =>
    Database.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).pipe(Effect.provide(context), Effect.ignore)
  )
  return context
}))

const Widget = SchemaRef.fromSchema(Schema.Struct({ id: Schema.String, name: Schema.String }), {
  name: "Widget",
  namespace: "console.test"
})

class Unfit extends Data.TaggedError("Unfit")<{ readonly message: string }> {}

/** Widgets named "broken…" fail while `state.broken`; the others are acknowledged. */
const state = { broken: true }
const audit = Checkpoint.make({
  topic,
  groupId: "audit",
  schema: Widget,
  keyConfig: { field: "id" },
  maxRetries: 0,
  tables: { schema },
  handle: (widget) =>
    widget.name.startsWith("broken") && state.broken
      ? new Unfit({ message: `widget ${widget.id} is unfit: ${widget.name}` })
      : Effect.succeed(Checkpoint.ack({ entityId: widget.id, eventTime: new Date(), eventType: "widget-created" }))
})

const count = (table: "checkpoint_failures" | "checkpoint_events", where = sql`true`) =>
  Effect.map(
    Database.execute(sql`select count(*)::int as n from ${sql.raw(`"${schema}".${table}`)} where ${where}`),
    (rows) => Number(rows[0].n)
  )

const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("50 millis") }).pipe(
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("the condition did not hold within 30 s") })
  )

const snap = (page: Page, name: string) =>
  shots === undefined ? Effect.void : on(page, (p) => p.screenshot({ path: `${shots}/${name}.png`, fullPage: true }))

describe("the console: failures and events", () => {
  layer(Layer.mergeAll(Db, MockBackend.layerMock, DeimosConfig.layer()), {
    timeout: 120_000,
    excludeTestServices: true
  })(
    (it) => {
      it.scoped("filter, inspect, retry, delete and bulk-retry failures; markup is shown, never run", () =>
        Effect.gen(function*() {
          const broker = yield* KafkaBroker.make({ port: 0, partitions: 1 })
          const Kafka = KafkaJs.layer({ brokers: [broker.broker], clientId: "console-test", logLevel: "nothing" })
          const widgets = [
            { id: "w1", name: "fine" },
            { id: "w2", name: "broken <script>window.__pwned = true</script>" },
            { id: "w3", name: "broken <img src=x onerror=\"window.__pwned = true\">" },
            { id: "w4", name: "broken gear" },
            { id: "w5", name: "broken spring" },
            { id: "w6", name: "fine too" }
          ]
          yield* Producer.make({ topic, schema: Widget, keyConfig: { field: "id" } }).publishList(widgets).pipe(
            Effect.provide(KafkaProducerBackend.layer().pipe(Layer.provide(Kafka)))
          )
          yield* Layer.build(Consumers.layer([audit]).pipe(Layer.provide(Kafka)))
          yield* waitUntil(
            Effect.map(
              Effect.all([count("checkpoint_failures"), count("checkpoint_events")]),
              ([f, e]) => f === 4 && e === 2
            )
          )

          const server = yield* Layer.build(
            EventsServer.layer(
              { port: 0, host: "127.0.0.1", token: Redacted.make(token), tables: { schema }, checkpoints: [audit] },
              Console.layerRoutes({ checkpoint: { schema }, outbox: false })
            )
          )
          const address = (yield* Effect.provide(HttpServer.HttpServer, server)).address as HttpServer.TcpAddress
          const base = `http://127.0.0.1:${address.port}/console`
          const { errors, page } = yield* pageOf(yield* browser)
          page.on("dialog", (dialog) => void dialog.accept())

          // the list: counts per topic and error, the rows, the filters
          yield* on(page, (p) => p.goto(`${base}/failures`))
          yield* snap(page, "failures")
          const failuresTable = page.getByRole("table", { name: "Failures", exact: true })
          expect(yield* on(page, () => failuresTable.locator("tbody tr").count())).toBe(4)
          const counts = page.getByRole("table", { name: "Failures per topic and error" })
          expect(yield* on(page, () => counts.locator("tbody tr").first().innerText())).toBe("widgets\tUnfit\t4")
          yield* on(page, async (p) => {
            await p.getByLabel("entity id or key").fill("w4")
            await p.getByRole("button", { name: "Filter" }).click()
            await p.waitForURL(/entity_id=w4/)
          })
          expect(yield* on(page, () => failuresTable.locator("tbody tr").count())).toBe(1)
          expect(yield* on(page, (p) => p.getByLabel("entity id or key").inputValue())).toBe("w4")

          // a detail: markup in the payload and the error message shows as text and does not run
          const [w2] = yield* Database.execute(
            sql`select id from ${sql.raw(`"${schema}".checkpoint_failures`)} where metadata->>'key' = 'w2'`
          )
          yield* on(page, (p) => p.goto(`${base}/failures/${w2.id}`))
          yield* snap(page, "failure")
          expect(yield* on(page, (p) => p.locator("figure", { hasText: "Payload" }).locator("pre").innerText()))
            .toContain("\"name\": \"broken <script>window.__pwned = true</script>\"")
          expect(yield* on(page, (p) => p.locator("dd", { hasText: "is unfit" }).innerText())).toContain("<script>")
          expect(yield* on(page, (p) => p.evaluate(() => (globalThis as { __pwned?: boolean }).__pwned)))
            .toBeUndefined()
          expect(yield* on(page, (p) => p.locator("figure", { hasText: "Cause chain" }).innerText())).toContain("Unfit")

          // retry without the token: a message on the page, and the failure stays
          yield* on(page, (p) => p.getByRole("button", { name: "Retry" }).click())
          yield* on(page, (p) => p.getByRole("status").filter({ hasText: "Not allowed" }).waitFor())
          expect(yield* count("checkpoint_failures")).toBe(4)
          // a wrong (or expired) token: the same message, nothing changes
          yield* on(page, async (p) => {
            await p.getByLabel("Token").fill("not-the-token")
            await p.getByRole("button", { name: "Save" }).click()
            await p.getByRole("status").filter({ hasText: "Token saved" }).waitFor()
            await p.getByRole("button", { name: "Retry" }).click()
            await p.getByRole("status").filter({ hasText: "Not allowed" }).waitFor()
          })
          expect(yield* count("checkpoint_failures")).toBe(4)

          // with the token, after the fix: the handler succeeds, the failure goes, the event is there
          state.broken = false
          yield* on(page, async (p) => {
            await p.getByLabel("Token").fill(token)
            await p.getByRole("button", { name: "Save" }).click()
            await p.getByRole("button", { name: "Retry" }).click()
            await p.waitForURL(`${base}/failures`)
          })
          expect(yield* count("checkpoint_failures", sql`metadata->>'key' = 'w2'`)).toBe(0)
          expect(yield* count("checkpoint_events", sql`entity_id = 'w2'`)).toBe(1)
          expect(yield* on(page, () => failuresTable.locator("tbody tr").count())).toBe(3)

          // delete one (with the confirmation accepted): gone, and no event for it
          const [w3] = yield* Database.execute(
            sql`select id from ${sql.raw(`"${schema}".checkpoint_failures`)} where metadata->>'key' = 'w3'`
          )
          yield* on(page, async (p) => {
            await p.goto(`${base}/failures/${w3.id}`)
            await p.getByRole("button", { name: "Delete" }).click()
            await p.waitForURL(`${base}/failures`)
          })
          expect(yield* count("checkpoint_failures", sql`metadata->>'key' = 'w3'`)).toBe(0)
          expect(yield* count("checkpoint_events", sql`entity_id = 'w3'`)).toBe(0)

          // bulk retry of the filtered set, with progress
          yield* on(page, async (p) => {
            await p.goto(`${base}/failures?topic=${topic}`)
            await p.getByRole("button", { name: "Retry 2 matching" }).click()
            await p.getByRole("status").filter({ hasText: "Bulk retry finished: 2 succeeded, 0 failed" }).waitFor()
          })
          expect(yield* count("checkpoint_failures")).toBe(0)
          expect(yield* count("checkpoint_events")).toBe(5)

          // events: search by entity id, then the detail
          yield* on(page, async (p) => {
            await p.goto(`${base}/events`)
            await p.getByLabel("entity id").fill("w2")
            await p.getByRole("button", { name: "Filter" }).click()
            await p.waitForURL(/entity_id=w2/)
          })
          yield* snap(page, "events")
          const eventsTable = page.getByRole("table", { name: "Events" })
          expect(yield* on(page, () => eventsTable.locator("tbody tr").count())).toBe(1)
          yield* on(page, async () => {
            await eventsTable.getByRole("link").first().click()
            await page.getByRole("heading", { name: "Event" }).waitFor()
          })
          expect(yield* on(page, (p) => p.locator("dd", { hasText: "widget-created" }).count())).toBe(1)
          expect(yield* on(page, (p) => p.locator("pre").innerText())).toContain("<script>")
          expect(yield* on(page, (p) => p.evaluate(() => (globalThis as { __pwned?: boolean }).__pwned)))
            .toBeUndefined()
          expect(errors).toEqual([])
        }))

      it.scoped("bad filters and unknown ids are messages on the page with their status", () =>
        Effect.gen(function*() {
          const server = yield* Layer.build(
            EventsServer.layer(
              { port: 0, host: "127.0.0.1", tables: { schema } },
              Console.layerRoutes({ checkpoint: { schema }, outbox: false })
            )
          )
          const address = (yield* Effect.provide(HttpServer.HttpServer, server)).address as HttpServer.TcpAddress
          const base = `http://127.0.0.1:${address.port}/console`
          const { page } = yield* pageOf(yield* browser)
          const visit = (path: string) =>
            on(page, async (p) => {
              const response = await p.goto(`${base}${path}`)
              return { status: response?.status(), alert: await p.getByRole("alert").innerText() }
            })
          expect(yield* visit("/failures?limit=abc")).toEqual({
            status: 400,
            alert: "Bad filter: limit must be a whole number from 1 to 200 (got \"abc\")."
          })
          expect((yield* visit("/failures?limit=-1")).status).toBe(400)
          expect((yield* visit("/events?offset=1.5")).alert).toContain("offset must be a whole number")
          expect(yield* visit("/events?from=yesterday")).toEqual({
            status: 400,
            alert: "Bad filter: from must be a date and time such as 2026-12-01T10:00 (got \"yesterday\")."
          })
          expect(yield* visit("/failures/987654321")).toEqual({ status: 404, alert: "Failure 987654321 not found." })
          expect(yield* visit("/events/nope")).toEqual({ status: 404, alert: "Event \"nope\" not found." })
        }))
    }
  )
})
