// The events API over real HTTP (a server on a free port) and real Postgres: routes, paging, filters, bad input,
// unknown ids, the bearer token, retries of failures, the OpenAPI document, and routes of another module.
import { Checkpoint, EventsApi } from "@deimos/checkpoint"
import { Database } from "@deimos/sql"
import { DatabaseError } from "@deimos/sql/DatabaseError"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DatabaseIn, Event, http, metadataOf, rows, schemaFor, serve, token, writeThing } from "./fixtures.js"

const schema = schemaFor("checkpoint_api")

class Boom extends Data.TaggedError("Boom")<{ readonly message: string }> {}

/** Fails for ids starting with `bad` while `state.failing`; otherwise writes a thing and acks (odd/even type). */
const state = { failing: true }
const orders = Checkpoint.make({
  topic: "orders",
  groupId: "g",
  schema: Event,
  keyConfig: { field: "id" },
  maxRetries: 0,
  tables: { schema },
  handle: (event) =>
    Effect.gen(function*() {
      if (event.id.startsWith("bad") && state.failing) return yield* new Boom({ message: `cannot take ${event.id}` })
      if (event.id.startsWith("skip")) return Checkpoint.skip
      yield* writeThing(schema, event.id, event.n)
      return Checkpoint.ack({
        entityId: event.id,
        eventTime: new Date(Date.UTC(2026, 0, 1, 0, 0, event.n)),
        eventType: event.n % 2 === 0 ? "even" : "odd",
        eventVersion: "v1"
      })
    })
})

const seed = Effect.gen(function*() {
  for (let n = 0; n < 5; n++) yield* orders.consume({ id: `o${n}`, n }, metadataOf("orders", n))
  yield* orders.consume({ id: "bad1", n: 10 }, metadataOf("orders", 10))
  yield* orders.consume({ id: "bad2", n: 11 }, metadataOf("orders", 11))
})

describe("events API", () => {
  it.layer(DatabaseIn(schema), { timeout: 60_000 })((it) => {
    it.scoped("serves ping, events with filters and paging, failures, and 404s with the documented body", () =>
      Effect.gen(function*() {
        yield* seed
        const base = yield* serve(schema, [orders])
        expect(yield* http("GET", `${base}/ping`)).toEqual({ status: 200, body: "PONG" })

        const all = yield* http("GET", `${base}/v1/events`)
        expect(all.status).toBe(200)
        const listed = all.body as ReadonlyArray<Record<string, unknown>>
        // newest event_time first
        expect(listed.map((e) => e.entity_id)).toEqual(["o4", "o3", "o2", "o1", "o0"])
        expect(listed[0]).toMatchObject({
          topic: "orders",
          group_id: "g",
          entity_id: "o4",
          event_time: "2026-01-01T00:00:04.000Z",
          event_type: "even",
          event_version: "v1",
          payload: { id: "o4", n: 4 }
        })
        expect(listed[0].checksum).toMatch(/^[0-9a-f]{32}$/)

        const page = yield* http("GET", `${base}/v1/events?limit=2&offset=1`)
        expect((page.body as ReadonlyArray<Record<string, unknown>>).map((e) => e.entity_id)).toEqual(["o3", "o2"])
        const odd = yield* http("GET", `${base}/v1/events?event_type=odd&topic=orders&group_id=g`)
        expect((odd.body as ReadonlyArray<Record<string, unknown>>).map((e) => e.entity_id)).toEqual(["o3", "o1"])
        const one = yield* http("GET", `${base}/v1/events?entity_id=o2`)
        expect((one.body as ReadonlyArray<Record<string, unknown>>).map((e) => e.entity_id)).toEqual(["o2"])
        expect((yield* http("GET", `${base}/v1/events?topic=nope`)).body).toEqual([])

        const got = yield* http("GET", `${base}/v1/events/${listed[0].id}`)
        expect(got).toEqual({ status: 200, body: listed[0] })
        const notFound = { status: 404, body: { error: true, message: "event not found" } }
        expect(yield* http("GET", `${base}/v1/events/999999`)).toEqual(notFound)
        expect(yield* http("GET", `${base}/v1/events/abc`)).toEqual(notFound)

        const failures = yield* http("GET", `${base}/v1/failures`)
        const failed = failures.body as ReadonlyArray<Record<string, unknown>>
        expect(failed.map((f) => (f.payload as { id: string }).id)).toEqual(["bad2", "bad1"])
        expect(failed[0]).toMatchObject({
          topic: "orders",
          group_id: "g",
          error_class: "Boom",
          error_message: "cannot take bad2",
          metadata: { consumer: "g:orders", partition: 0, offset: "11", retryCount: 0 }
        })
        expect(failed[0].error_backtrace).toContain("cannot take bad2")
        expect((yield* http("GET", `${base}/v1/failures?limit=1&offset=1`)).body).toEqual([failed[1]])
        expect(yield* http("GET", `${base}/v1/failures/count`)).toEqual({ status: 200, body: { count: 2 } })
        expect(yield* http("GET", `${base}/v1/failures/${failed[0].id}`)).toEqual({ status: 200, body: failed[0] })
        expect(yield* http("GET", `${base}/v1/failures/424242`)).toEqual({
          status: 404,
          body: { error: true, message: "failure not found" }
        })
      }))

    it.scoped("bad query params are a 400 that says what is wrong", () =>
      Effect.gen(function*() {
        const base = yield* serve(schema, [orders])
        for (
          const [route, query, says] of [
            ["events", "limit=-1", "limit must be an integer from 1 to 100"],
            ["events", "limit=101", "limit must be an integer from 1 to 100"],
            ["events", "limit=2.5", "limit must be an integer from 1 to 100"],
            ["events", "offset=abc", "offset must be an integer from 0"],
            ["failures", "offset=-3", "offset must be an integer from 0"],
            ["failures", "limit=ten", "limit must be an integer from 1 to 100"]
          ] as const
        ) {
          const response = yield* http("GET", `${base}/v1/${route}?${query}`)
          expect(response.status, `${route}?${query}`).toBe(400)
          expect((response.body as { message: string }).message).toContain(says)
        }
      }))

    it.scoped("mutating routes need the configured bearer token: 401 without it or with another", () =>
      Effect.gen(function*() {
        const base = yield* serve(schema, [orders])
        const [failure] = (yield* http("GET", `${base}/v1/failures`)).body as ReadonlyArray<{ id: string }>
        for (const bearer of [undefined, "wrong", `${token}x`, ""]) {
          for (const [method, path] of [["DELETE", ""], ["POST", "/retry"]] as const) {
            const response = yield* http(
              method,
              `${base}/v1/failures/${failure.id}${path}`,
              bearer === undefined ? {} : { bearer }
            )
            expect(response.status, `${method} with ${bearer}`).toBe(401)
            expect(response.body).toMatchObject({ error: true })
          }
        }
        // nothing changed
        expect(yield* http("GET", `${base}/v1/failures/count`)).toEqual({ status: 200, body: { count: 2 } })
        // reading needs no token
        expect((yield* http("GET", `${base}/v1/failures/${failure.id}`)).status).toBe(200)
      }))

    it.scoped("retry: 422 while the handler fails (the failure and nothing else stays), then the event and no failure", () =>
      Effect.gen(function*() {
        const base = yield* serve(schema, [orders])
        const failures = (yield* http("GET", `${base}/v1/failures?topic=orders`)).body as ReadonlyArray<
          { id: string; payload: { id: string } }
        >
        const bad1 = failures.find((f) => f.payload.id === "bad1")!
        state.failing = true
        const again = yield* http("POST", `${base}/v1/failures/${bad1.id}/retry`, { bearer: token })
        expect(again).toEqual({
          status: 422,
          body: { error: true, message: "The handler failed again: cannot take bad1" }
        })
        expect((yield* http("GET", `${base}/v1/failures/${bad1.id}`)).status).toBe(200)
        expect((yield* http("GET", `${base}/v1/events?entity_id=bad1`)).body).toEqual([])

        state.failing = false
        const retried = yield* http("POST", `${base}/v1/failures/${bad1.id}/retry`, { bearer: token })
        expect(retried).toEqual({ status: 200, body: { acknowledged: true } })
        expect(yield* http("GET", `${base}/v1/failures/${bad1.id}`)).toMatchObject({ status: 404 })
        const events = (yield* http("GET", `${base}/v1/events?entity_id=bad1`)).body as ReadonlyArray<unknown>
        expect(events).toHaveLength(1)
        expect((yield* rows(schema, "things")).map((r) => r.id)).toContain("bad1")
        // once retried, the message is consumed: delivered again, it is a duplicate
        expect(yield* orders.consume({ id: "bad1", n: 10 }, metadataOf("orders", 10))).toBe("alreadyConsumed")

        expect(yield* http("POST", `${base}/v1/failures/${bad1.id}/retry`, { bearer: token })).toEqual({
          status: 404,
          body: { error: true, message: "failure not found" }
        })
        expect(yield* http("POST", `${base}/v1/failures/nope/retry`, { bearer: token })).toMatchObject({ status: 404 })
      }))

    it.scoped("retry without a checkpoint for the failure's consumer is a 422; delete acknowledges, then 404", () =>
      Effect.gen(function*() {
        const base = yield* serve(schema, [])
        const [failure] = (yield* http("GET", `${base}/v1/failures`)).body as ReadonlyArray<{ id: string }>
        const retried = yield* http("POST", `${base}/v1/failures/${failure.id}/retry`, { bearer: token })
        expect(retried.status).toBe(422)
        expect((retried.body as { message: string }).message).toContain("No checkpoint of consumer g:orders")
        expect(yield* http("DELETE", `${base}/v1/failures/${failure.id}`, { bearer: token })).toEqual({
          status: 200,
          body: { acknowledged: true }
        })
        expect(yield* http("DELETE", `${base}/v1/failures/${failure.id}`, { bearer: token })).toEqual({
          status: 404,
          body: { error: true, message: "failure not found" }
        })
      }))

    it.scoped("serves the OpenAPI document, and another module's routes behind the same token", () =>
      Effect.gen(function*() {
        // another module's routes: the server's token is in context where they are made
        const console = HttpApiBuilder.Router.use((router) =>
          Effect.gen(function*() {
            const token = yield* EventsApi.Token
            yield* router.get("/console", HttpServerResponse.text("console"))
            yield* router.post(
              "/console/purge",
              Effect.gen(function*() {
                const request = yield* HttpServerRequest.HttpServerRequest
                const bearer = (request.headers.authorization ?? "").replace(/^Bearer /, "")
                yield* EventsApi.authorize(bearer).pipe(Effect.provideService(EventsApi.Token, token))
                return HttpServerResponse.text("purged")
              }).pipe(
                Effect.catchTag("Unauthorized", (e) =>
                  HttpServerResponse.json({ error: true, message: e.message }, { status: 401 })),
                Effect.orDie
              )
            )
          })
        )
        const base = yield* serve(schema, [orders], console)
        const spec = yield* http("GET", `${base}/docs/openapi.json`)
        expect(spec.status).toBe(200)
        expect(Object.keys((spec.body as { paths: object }).paths).sort()).toEqual([
          "/ping",
          "/v1/events",
          "/v1/events/{id}",
          "/v1/failures",
          "/v1/failures/count",
          "/v1/failures/{id}",
          "/v1/failures/{id}/retry"
        ])
        expect(yield* http("GET", `${base}/console`)).toEqual({ status: 200, body: "console" })
        expect((yield* http("POST", `${base}/console/purge`)).status).toBe(401)
        expect(yield* http("POST", `${base}/console/purge`, { bearer: token })).toEqual({ status: 200, body: "purged" })
      }))
  })
  // the database out of reach: a Database whose every query fails as a lost connection does
  const down = new DatabaseError({ reason: "Connection", retriable: true, message: "connection refused" })
  const Unreachable = Layer.succeed(Database.Database, {
    kind: "postgres",
    use: () => Effect.fail(down),
    execute: () => Effect.fail(down),
    transaction: () => Effect.fail(down),
    inTransaction: Effect.succeed(false),
    notify: () => Effect.fail(down),
    listen: () => Effect.fail(down)
  })

  it.scoped(
    "the database out of reach: every data route answers 503 with the documented body; ping still answers",
    () =>
      Effect.gen(function*() {
        const base = yield* serve(schema, [orders])
        expect(yield* http("GET", `${base}/ping`)).toEqual({ status: 200, body: "PONG" })
        const body = { error: true, message: "the database could not answer: Connection" }
        for (
          const [method, route] of [
            ["GET", "/v1/events"],
            ["GET", "/v1/events/1"],
            ["GET", "/v1/failures"],
            ["GET", "/v1/failures/count"],
            ["GET", "/v1/failures/1"],
            ["DELETE", "/v1/failures/1"],
            ["POST", "/v1/failures/1/retry"]
          ] as const
        ) {
          expect({ route, ...(yield* http(method, `${base}${route}`, { bearer: token })) }).toEqual({
            route,
            status: 503,
            body
          })
        }
      }).pipe(Effect.provide(Unreachable)),
    30_000
  )
})
