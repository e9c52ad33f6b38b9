/**
 * The events HTTP API over the checkpoint tables, as an `@effect/platform` `HttpApi`:
 *
 * | route | answer |
 * | --- | --- |
 * | `GET /ping` | `PONG` (text) |
 * | `GET /v1/events?limit=20&offset=0&topic&group_id&entity_id&event_type` | the events, newest `event_time` first |
 * | `GET /v1/events/:id` | an event, or 404 `{"error":true,"message":"event not found"}` |
 * | `GET /v1/failures?limit&offset&topic&group_id&entity_id&event_type` | the failures, newest first |
 * | `GET /v1/failures/count` | `{"count":n}` |
 * | `GET /v1/failures/:id` | a failure, or 404 `{"error":true,"message":"failure not found"}` |
 * | `DELETE /v1/failures/:id` | `{"acknowledged":true}`, or 404 |
 * | `POST /v1/failures/:id/retry` | `{"acknowledged":true}` (an event stored; `false` when the handler skipped), 404, or 422 `{"error":true,"message":…}` when the handler fails again (the failure stays) |
 *
 * `limit` is an integer from 1 to {@link maxLimit} (default 20), `offset` an integer from 0 (default 0); anything
 * else is a 400 whose body says what was wrong. The mutating routes (`DELETE`, `POST`) go through the
 * {@link Authorization} middleware: when a {@link Token} is configured they need `Authorization: Bearer <token>`
 * (compared in constant time), else 401 `{"error":true,"message":"…"}`. Another module (a web console) uses the same
 * middleware for its own mutating routes, or {@link authorize} for plain router routes.
 *
 * @since 0.1.0
 */
import { Database } from "@deimos/sql"
import type { DatabaseError } from "@deimos/sql/DatabaseError"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import { and, count, desc, eq, type SQL } from "drizzle-orm"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as crypto from "node:crypto"
import * as Checkpoint from "./Checkpoint.js"
import type * as CheckpointError from "./CheckpointError.js"
import * as Tables from "./CheckpointTables.js"

/**
 * The largest `limit` a listing accepts.
 *
 * @since 0.1.0
 */
export const maxLimit = 100

// ---------------------------------------------------------------------------------------------------------------
// bodies
// ---------------------------------------------------------------------------------------------------------------

/** The body of every error: `{"error":true,"message":…}`. */
const ErrorBody = Schema.Struct({ error: Schema.Literal(true), message: Schema.String })

/** An error class as its body with a status (the class is told apart by `instanceof`, the body has no tag). */
const bodyOf = <A extends { readonly message: string }>(
  Class: new(args: { readonly message: string }) => A,
  identifier: string,
  status: number
): Schema.Schema<A, typeof ErrorBody.Encoded> =>
  Schema.transform(ErrorBody, Schema.instanceOf(Class), {
    strict: true,
    decode: (body) => new Class({ message: body.message }),
    encode: (error) => ({ error: true as const, message: error.message })
  }).annotations({ identifier, ...HttpApiSchema.annotations({ status }) })

/**
 * 404: no event or failure with that id.
 *
 * @since 0.1.0
 */
export class NotFound extends Data.TaggedError("NotFound")<{ readonly message: string }> {}

/**
 * 422: a retried failure's handler failed again (or no checkpoint handles it); the failure stays.
 *
 * @since 0.1.0
 */
export class RetryFailed extends Data.TaggedError("RetryFailed")<{ readonly message: string }> {}

/**
 * 401: a mutating route without the configured bearer token.
 *
 * @since 0.1.0
 */
export class Unauthorized extends Data.TaggedError("Unauthorized")<{ readonly message: string }> {}

/**
 * 503: the database could not answer.
 *
 * @since 0.1.0
 */
export class Unavailable extends Data.TaggedError("Unavailable")<{ readonly message: string }> {}

/**
 * The error bodies, with their statuses.
 *
 * @since 0.1.0
 */
export const errors = {
  NotFound: bodyOf(NotFound, "NotFound", 404),
  RetryFailed: bodyOf(RetryFailed, "RetryFailed", 422),
  Unauthorized: bodyOf(Unauthorized, "Unauthorized", 401),
  Unavailable: bodyOf(Unavailable, "Unavailable", 503)
} as const

/**
 * An event as the API answers it.
 *
 * @since 0.1.0
 */
export const Event = Schema.Struct({
  id: Schema.String,
  topic: Schema.String,
  group_id: Schema.String,
  entity_id: Schema.NullOr(Schema.String),
  event_time: Schema.NullOr(Schema.String),
  event_type: Schema.NullOr(Schema.String),
  event_version: Schema.NullOr(Schema.String),
  checksum: Schema.String,
  payload: Schema.Unknown,
  created_at: Schema.String
}).annotations({ identifier: "Event" })

/**
 * A failure as the API answers it.
 *
 * @since 0.1.0
 */
export const Failure = Schema.Struct({
  id: Schema.String,
  created_at: Schema.String,
  topic: Schema.String,
  group_id: Schema.String,
  entity_id: Schema.NullOr(Schema.String),
  event_time: Schema.NullOr(Schema.String),
  event_type: Schema.NullOr(Schema.String),
  event_version: Schema.NullOr(Schema.String),
  checksum: Schema.String,
  payload: Schema.Unknown,
  metadata: Schema.Unknown,
  error_class: Schema.String,
  error_message: Schema.String,
  error_backtrace: Schema.String
}).annotations({ identifier: "Failure" })

const Limit = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, maxLimit)).annotations({
  message: () => ({ message: `limit must be an integer from 1 to ${maxLimit}`, override: true })
})

const Offset = Schema.NumberFromString.pipe(Schema.int(), Schema.greaterThanOrEqualTo(0)).annotations({
  message: () => ({ message: "offset must be an integer from 0", override: true })
})

/**
 * The listing parameters: paging and the filters.
 *
 * @since 0.1.0
 */
export const ListParams = Schema.Struct({
  limit: Schema.optionalWith(Limit, { default: () => 20 }),
  offset: Schema.optionalWith(Offset, { default: () => 0 }),
  topic: Schema.optional(Schema.String),
  group_id: Schema.optional(Schema.String),
  entity_id: Schema.optional(Schema.String),
  event_type: Schema.optional(Schema.String)
})

const Acknowledged = Schema.Struct({ acknowledged: Schema.Boolean })

const id = HttpApiSchema.param("id", Schema.String)

// ---------------------------------------------------------------------------------------------------------------
// authorization
// ---------------------------------------------------------------------------------------------------------------

/**
 * The bearer token mutating routes need; `None`: they need none.
 *
 * @since 0.1.0
 * @category tags
 */
export class Token extends Context.Tag("@deimos/checkpoint/EventsApi/Token")<
  Token,
  Option.Option<Redacted.Redacted>
>() {}

/**
 * The token as a layer (`undefined`: no token needed).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerToken = (token: Redacted.Redacted | undefined): Layer.Layer<Token> =>
  Layer.succeed(Token, Option.fromNullable(token))

const digest = (value: string) => crypto.createHash("sha256").update(value, "utf8").digest()

/**
 * Checks a presented bearer token against the configured one, in constant time (the SHA-256 digests of both are
 * compared with `timingSafeEqual`, so neither content nor length leaks through timing). Passes when no token is
 * configured.
 *
 * @since 0.1.0
 */
export const authorize = (presented: string | undefined): Effect.Effect<void, Unauthorized, Token> =>
  Effect.flatMap(Token, (token) => {
    if (Option.isNone(token)) return Effect.void
    const ok = presented !== undefined && presented.length > 0 &&
      crypto.timingSafeEqual(digest(presented), digest(Redacted.value(token.value)))
    return ok ? Effect.void : Effect.fail(
      new Unauthorized({
        message: presented === undefined || presented.length === 0
          ? "this route needs Authorization: Bearer <token>"
          : "the bearer token is not the configured one"
      })
    )
  })

/**
 * The middleware of mutating routes: the bearer token, when one is configured.
 *
 * @since 0.1.0
 * @category tags
 */
export class Authorization
  extends HttpApiMiddleware.Tag<Authorization>()("@deimos/checkpoint/EventsApi/Authorization", {
    failure: errors.Unauthorized,
    security: { bearer: HttpApiSecurity.bearer }
  })
{}

/**
 * The {@link Authorization} middleware over the {@link Token} in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerAuthorization: Layer.Layer<Authorization, never, Token> = Layer.effect(
  Authorization,
  Effect.map(Token, (token) =>
    Authorization.of({
      bearer: (presented) => authorize(Redacted.value(presented)).pipe(Effect.provideService(Token, token))
    }))
)

// ---------------------------------------------------------------------------------------------------------------
// the API
// ---------------------------------------------------------------------------------------------------------------

/**
 * `GET /ping`.
 *
 * @since 0.1.0
 */
export class SystemGroup extends HttpApiGroup.make("system").add(
  HttpApiEndpoint.get("ping", "/ping").addSuccess(HttpApiSchema.Text())
) {}

/**
 * The events routes.
 *
 * @since 0.1.0
 */
export class EventsGroup extends HttpApiGroup.make("events").add(
  HttpApiEndpoint.get("list", "/v1/events").setUrlParams(ListParams).addSuccess(Schema.Array(Event))
).add(
  HttpApiEndpoint.get("get")`/v1/events/${id}`.addSuccess(Event).addError(errors.NotFound)
).addError(errors.Unavailable) {}

/**
 * The failures routes.
 *
 * @since 0.1.0
 */
export class FailuresGroup extends HttpApiGroup.make("failures").add(
  HttpApiEndpoint.get("list", "/v1/failures").setUrlParams(ListParams).addSuccess(Schema.Array(Failure))
).add(
  HttpApiEndpoint.get("count", "/v1/failures/count").addSuccess(Schema.Struct({ count: Schema.Number }))
).add(
  HttpApiEndpoint.get("get")`/v1/failures/${id}`.addSuccess(Failure).addError(errors.NotFound)
).add(
  HttpApiEndpoint.del("delete")`/v1/failures/${id}`.addSuccess(Acknowledged).addError(errors.NotFound).middleware(
    Authorization
  )
).add(
  HttpApiEndpoint.post("retry")`/v1/failures/${id}/retry`.addSuccess(Acknowledged).addError(errors.NotFound).addError(
    errors.RetryFailed
  ).middleware(Authorization)
).addError(errors.Unavailable) {}

/**
 * The API: ping, events, failures.
 *
 * @since 0.1.0
 */
export class Api extends HttpApi.make("deimos-checkpoint").add(SystemGroup).add(EventsGroup).add(FailuresGroup) {}

// ---------------------------------------------------------------------------------------------------------------
// handlers
// ---------------------------------------------------------------------------------------------------------------

/**
 * @since 0.1.0
 */
export interface Options<Cs extends ReadonlyArray<Checkpoint.Any>> {
  /** Where the checkpoint tables are. @default the search path's, no prefix */
  readonly tables?: Tables.Naming | undefined
  /** The checkpoints whose failures `POST /v1/failures/:id/retry` can retry (matched by consumer name and group). */
  readonly checkpoints?: Cs | undefined
}

const iso = (date: Date | null) => date === null ? null : date.toISOString()

const unavailable = (error: DatabaseError) =>
  Effect.zipRight(
    Effect.logError("Events API: the database could not answer", error),
    Effect.fail(new Unavailable({ message: `the database could not answer: ${error.reason}` }))
  )

const notFound = (kind: "event" | "failure") => new NotFound({ message: `${kind} not found` })

const isId = (value: string) => /^\d{1,19}$/.test(value)

type Filters = Schema.Schema.Type<typeof ListParams>

const filtersOf = (
  table: {
    readonly topic: Parameters<typeof eq>[0]
    readonly groupId: Parameters<typeof eq>[0]
    readonly entityId: Parameters<typeof eq>[0]
    readonly eventType: Parameters<typeof eq>[0]
  },
  params: Filters
): SQL | undefined => {
  const conditions: Array<SQL> = []
  if (params.topic !== undefined) conditions.push(eq(table.topic, params.topic))
  if (params.group_id !== undefined) conditions.push(eq(table.groupId, params.group_id))
  if (params.entity_id !== undefined) conditions.push(eq(table.entityId, params.entity_id))
  if (params.event_type !== undefined) conditions.push(eq(table.eventType, params.event_type))
  return conditions.length === 0 ? undefined : and(...conditions)
}

/**
 * The handlers of every group, over the `Database` in context; with {@link layerAuthorization} and {@link Token}
 * still to provide.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerHandlers = <const Cs extends ReadonlyArray<Checkpoint.Any> = readonly []>(
  options: Options<Cs> = {}
): Layer.Layer<
  | HttpApiGroup.ApiGroup<"deimos-checkpoint", "system">
  | HttpApiGroup.ApiGroup<"deimos-checkpoint", "events">
  | HttpApiGroup.ApiGroup<"deimos-checkpoint", "failures">,
  never,
  Database.Database | Checkpoint.Requirements<Cs[number]>
> => {
  const naming = options.tables ?? {}
  const { events, failures } = Tables.tables(naming)
  const checkpoints = options.checkpoints ?? ([] as unknown as Cs)
  type EventRow = typeof events.$inferSelect
  type FailureRow = typeof failures.$inferSelect
  const eventBody = (row: EventRow): typeof Event.Type => ({
    id: String(row.id),
    topic: row.topic,
    group_id: row.groupId,
    entity_id: row.entityId,
    event_time: iso(row.eventTime),
    event_type: row.eventType,
    event_version: row.eventVersion,
    checksum: row.checksum,
    payload: row.payload,
    created_at: row.createdAt.toISOString()
  })
  const failureBody = (row: FailureRow): typeof Failure.Type => ({
    id: String(row.id),
    created_at: row.createdAt.toISOString(),
    topic: row.topic,
    group_id: row.groupId,
    entity_id: row.entityId,
    event_time: iso(row.eventTime),
    event_type: row.eventType,
    event_version: row.eventVersion,
    checksum: row.checksum,
    payload: row.payload,
    metadata: row.metadata,
    error_class: row.errorClass,
    error_message: row.errorMessage,
    error_backtrace: row.errorBacktrace
  })

  const System = HttpApiBuilder.group(
    Api,
    "system",
    (handlers) => handlers.handle("ping", () => Effect.succeed("PONG"))
  )

  const Events = HttpApiBuilder.group(
    Api,
    "events",
    (handlers) =>
      handlers.handle(
        "list",
        ({ urlParams }) =>
          Database.use((db) =>
            db.select().from(events).where(filtersOf(events, urlParams)).orderBy(
              desc(events.eventTime),
              desc(events.createdAt),
              desc(events.id)
            ).limit(urlParams.limit).offset(urlParams.offset)
          ).pipe(Effect.map((rows) => rows.map(eventBody)), Effect.catchTag("DatabaseError", unavailable))
      ).handle(
        "get",
        ({ path }) =>
          isId(path.id)
            ? Database.use((db) => db.select().from(events).where(eq(events.id, BigInt(path.id)))).pipe(
              Effect.catchTag("DatabaseError", unavailable),
              Effect.flatMap((rows) =>
                rows.length === 0 || rows[0].eventTime === null
                  ? Effect.fail(notFound("event"))
                  : Effect.succeed(eventBody(rows[0]))
              )
            )
            : Effect.fail(notFound("event"))
      )
  )

  const Failures = HttpApiBuilder.group(
    Api,
    "failures",
    (handlers) =>
      handlers.handle(
        "list",
        ({ urlParams }) =>
          Database.use((db) =>
            db.select().from(failures).where(filtersOf(failures, urlParams)).orderBy(
              desc(failures.createdAt),
              desc(failures.id)
            ).limit(urlParams.limit).offset(urlParams.offset)
          ).pipe(Effect.map((rows) => rows.map(failureBody)), Effect.catchTag("DatabaseError", unavailable))
      ).handle(
        "count",
        () =>
          Database.use((db) => db.select({ count: count() }).from(failures)).pipe(
            Effect.map((rows) => ({ count: Number(rows[0].count) })),
            Effect.catchTag("DatabaseError", unavailable)
          )
      ).handle("get", ({ path }) =>
        isId(path.id)
          ? Database.use((db) => db.select().from(failures).where(eq(failures.id, BigInt(path.id)))).pipe(
            Effect.catchTag("DatabaseError", unavailable),
            Effect.flatMap((rows) =>
              rows.length === 0 ? Effect.fail(notFound("failure")) : Effect.succeed(failureBody(rows[0]))
            )
          )
          : Effect.fail(notFound("failure"))).handle("delete", ({ path }) =>
          isId(path.id)
            ? Database.use((db) =>
              db.delete(failures).where(eq(failures.id, BigInt(path.id))).returning({ id: failures.id })
            ).pipe(
              Effect.catchTag("DatabaseError", unavailable),
              Effect.flatMap((rows) =>
                rows.length === 0 ? Effect.fail(notFound("failure")) : Effect.succeed({ acknowledged: true })
              )
            )
            : Effect.fail(notFound("failure"))).handle(
          "retry",
          ({ path }) =>
            (Checkpoint.retryFailure(checkpoints, path.id, naming) as Effect.Effect<
              { readonly acknowledged: boolean },
              CheckpointError.NotFound | CheckpointError.RetryError | DatabaseError,
              Database.Database | Checkpoint.Requirements<Cs[number]>
            >).pipe(
              Effect.catchTags({
                NotFound: () => Effect.fail(notFound("failure")),
                RetryError: (error) => Effect.fail(new RetryFailed({ message: error.message })),
                DatabaseError: unavailable
              })
            )
        )
  )

  return Layer.mergeAll(System, Events, Failures) as Layer.Layer<
    | HttpApiGroup.ApiGroup<"deimos-checkpoint", "system">
    | HttpApiGroup.ApiGroup<"deimos-checkpoint", "events">
    | HttpApiGroup.ApiGroup<"deimos-checkpoint", "failures">,
    never,
    Database.Database | Checkpoint.Requirements<Cs[number]>
  >
}

/**
 * The API with its handlers and the {@link Authorization} middleware (`HttpApi.Api`, what `HttpApiBuilder.serve`
 * serves); with {@link Token} and the `Database` still to provide.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <const Cs extends ReadonlyArray<Checkpoint.Any> = readonly []>(
  options: Options<Cs> = {}
): Layer.Layer<HttpApi.Api, never, Token | Database.Database | Checkpoint.Requirements<Cs[number]>> =>
  HttpApiBuilder.api(Api).pipe(
    Layer.provide(layerHandlers(options)),
    Layer.provide(layerAuthorization)
  )
