/**
 * The operator web console: checkpoint failures (filter, inspect, retry, delete, bulk retry), checkpoint events,
 * the outbox backlog with its relay leases, and consumer lag. Server-rendered pages with one small script; every
 * value on a page is escaped, and the pages allow no inline script.
 *
 * The console only reads. Retry and delete buttons call the events API's routes (`POST /v1/failures/:id/retry`,
 * `DELETE /v1/failures/:id`) on the same server, with the bearer token the operator enters at the top of the page,
 * so the API's token check guards the console too.
 *
 * @since 0.1.0
 */
import { CheckpointTables } from "@deimos/checkpoint"
import type { LagReporter } from "@deimos/kafka"
import * as Database from "@deimos/sql/Database"
import type * as DatabaseError from "@deimos/sql/DatabaseError"
import * as Outbox from "@deimos/sql/Outbox"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { type SQL, sql } from "drizzle-orm"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import { type Html, html } from "./internal/html.js"
import { script } from "./internal/script.js"
import * as View from "./internal/views.js"

/**
 * Lag of one partition of a consumer group, as `LagReporter.report` and `LagReporter.measureGroups` measure it.
 *
 * @since 0.1.0
 */
export type PartitionLag = LagReporter.PartitionLag

/**
 * `group:topic` pairs (as `CONSOLE_LAG` and `deimos console --lag` give them, blanks ignored) as the groups whose lag
 * the consumers view shows; or the first pair that is not one.
 *
 * @since 0.1.0
 */
export const parseLagGroups = (
  pairs: ReadonlyArray<string>
): Either.Either<ReadonlyArray<{ readonly groupId: string; readonly topic: string }>, string> => {
  const out: Array<{ readonly groupId: string; readonly topic: string }> = []
  for (const pair of pairs.map((p) => p.trim()).filter((p) => p !== "")) {
    const colon = pair.indexOf(":")
    if (colon <= 0 || colon === pair.length - 1) return Either.left(pair)
    out.push({ groupId: pair.slice(0, colon), topic: pair.slice(colon + 1) })
  }
  return Either.right(out)
}

/**
 * @since 0.1.0
 */
export interface Options {
  /** Where the pages are served. @default "/console" */
  readonly basePath?: `/${string}` | undefined
  /** Where the events API's routes are (the buttons call them). @default "" (the same server's root) */
  readonly apiPath?: string | undefined
  /** The checkpoint tables (failures and events views), or `false` for none. @default the default naming */
  readonly checkpoint?: CheckpointTables.Naming | false | undefined
  /** The outbox tables (outbox view), or `false` for none. @default the default naming */
  readonly outbox?: Outbox.Naming | false | undefined
  /**
   * Measures consumer lag (consumers view): `LagReporter.report(consumers)` or `LagReporter.measureGroups(groups)`,
   * provided with its driver.
   */
  readonly lag?: Effect.Effect<ReadonlyArray<PartitionLag>, unknown> | undefined
  /** How often live views refresh. @default 2000 */
  readonly refreshMillis?: number | undefined
  /** Most failures one bulk retry sends. @default 100 */
  readonly bulkLimit?: number | undefined
}

/** A request the page cannot answer: a bad filter, an unknown id. Shown on the page with its status. */
class PageProblem extends Data.TaggedError("PageProblem")<{ readonly status: number; readonly message: string }> {}

const maxLimit = 200

type Query = Readonly<Record<string, string | ReadonlyArray<string>>>

const text = (query: Query, name: string): string | undefined => {
  const value = query[name]
  const one = typeof value === "string" ? value : value?.[0]
  return one === undefined || one.trim() === "" ? undefined : one.trim()
}

const whole = (query: Query, name: string, fallback: number, min: number, max: number) => {
  const value = text(query, name)
  if (value === undefined) return Effect.succeed(fallback)
  const n = Number(value)
  return /^\d+$/.test(value) && n >= min && n <= max
    ? Effect.succeed(n)
    : Effect.fail(
      new PageProblem({
        status: 400,
        message: `Bad filter: ${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)}).`
      })
    )
}

const instant = (query: Query, name: string) => {
  const value = text(query, name)
  if (value === undefined) return Effect.succeed(undefined)
  const date = new Date(value)
  return Number.isNaN(date.getTime())
    ? Effect.fail(
      new PageProblem({
        status: 400,
        message: `Bad filter: ${name} must be a date and time such as 2026-12-01T10:00 (got ${JSON.stringify(value)}).`
      })
    )
    : Effect.succeed(date)
}

const idOf = (kind: string) =>
  Effect.flatMap(HttpRouter.params, (params) => {
    const id = params.id ?? ""
    return /^\d{1,18}$/.test(id)
      ? Effect.succeed(id)
      : Effect.fail(new PageProblem({ status: 404, message: `${kind} ${JSON.stringify(id)} not found.` }))
  })

const where = (conditions: ReadonlyArray<SQL | undefined>): SQL => {
  const present = conditions.filter((c): c is SQL => c !== undefined)
  return present.length === 0 ? sql`true` : sql.join(present, sql` and `)
}

interface ListFilters {
  readonly values: Record<string, string>
  readonly where: SQL
  readonly limit: number
  readonly offset: number
}

/** The filters of a list page: exact matches on text columns, a time range, paging. */
const listFilters = (
  columns: ReadonlyArray<readonly [param: string, column: string, label: string]>,
  timeColumn: string
) =>
  Effect.gen(function*() {
    const query = yield* HttpServerRequest.ParsedSearchParams
    const limit = yield* whole(query, "limit", 50, 1, maxLimit)
    const offset = yield* whole(query, "offset", 0, 0, Number.MAX_SAFE_INTEGER)
    const from = yield* instant(query, "from")
    const to = yield* instant(query, "to")
    const values: Record<string, string> = {}
    const conditions: Array<SQL | undefined> = []
    for (const [param, column] of columns) {
      const value = text(query, param)
      if (value === undefined) continue
      values[param] = value
      conditions.push(sql`${sql.raw(column)} = ${value}`)
    }
    if (from !== undefined) {
      values.from = text(query, "from")!
      conditions.push(sql`${sql.raw(timeColumn)} >= ${from.toISOString()}::timestamptz`)
    }
    if (to !== undefined) {
      values.to = text(query, "to")!
      conditions.push(sql`${sql.raw(timeColumn)} <= ${to.toISOString()}::timestamptz`)
    }
    return { values, where: where(conditions), limit, offset } satisfies ListFilters
  })

// a failure has no entity id of its handler's (that comes with an ack): its message key stands in
const failureFilters = [
  ["topic", "topic", "topic"],
  ["group_id", "group_id", "group id"],
  ["entity_id", "coalesce(entity_id, metadata->>'key')", "entity id or key"],
  ["event_type", "event_type", "event type"],
  ["error_class", "error_class", "error"]
] as const

const eventFilters = [
  ["topic", "topic", "topic"],
  ["group_id", "group_id", "group id"],
  ["entity_id", "entity_id", "entity id"],
  ["event_type", "event_type", "event type"]
] as const

const fields = (names: ReadonlyArray<readonly [string, string, string]>, extra: ReadonlyArray<View.Field>) => [
  ...names.map(([name, , label]) => ({ name, label })),
  ...extra
]

const timeFields: ReadonlyArray<View.Field> = [
  { name: "from", label: "from", type: "datetime-local" },
  { name: "to", label: "to", type: "datetime-local" }
]

type Row = Record<string, unknown>

const str = (u: unknown): string => u === null || u === undefined ? "–" : String(u)

/**
 * The console's routes, to serve on their own (`serve`) or beside the events API (`HttpRouter.concat`).
 *
 * @since 0.1.0
 */
export const router = (options: Options = {}): HttpRouter.HttpRouter<never, Database.Database> => {
  const base = options.basePath ?? "/console"
  const api = options.apiPath ?? ""
  const refresh = options.refreshMillis ?? 2000
  const bulkLimit = options.bulkLimit ?? 100
  const checkpoint = options.checkpoint === false ? undefined : options.checkpoint ?? {}
  const outbox = options.outbox === false ? undefined : Outbox.namesOf(options.outbox ?? {})
  const lag = options.lag

  const sections = [
    ...(checkpoint ? [{ path: "failures", label: "Failures" }, { path: "events", label: "Events" }] : []),
    ...(outbox ? [{ path: "outbox", label: "Outbox" }] : []),
    ...(lag ? [{ path: "consumers", label: "Consumers" }] : [])
  ]

  const respond = (status: number, body: string) =>
    HttpServerResponse.text(body, {
      status,
      contentType: "text/html; charset=utf-8",
      headers: {
        "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'",
        "x-content-type-options": "nosniff",
        "cache-control": "no-store"
      }
    })

  const show = <E extends DatabaseError.DatabaseError | PageProblem, R>(
    current: string,
    title: string,
    body: Effect.Effect<Html, E, R>
  ) =>
    body.pipe(
      Effect.map((content) => respond(200, View.page({ base, title, sections, current }, content).value)),
      Effect.catchAll((error: DatabaseError.DatabaseError | PageProblem) =>
        Effect.succeed(
          respond(
            error._tag === "PageProblem" ? error.status : 503,
            View.page(
              { base, title, sections, current },
              View.problem(
                error._tag === "PageProblem" ? error.message : `The database did not answer: ${error.message}`
              )
            ).value
          )
        )
      ),
      Effect.catchAllDefect((defect) =>
        Effect.as(
          Effect.logError("The console failed to render a page", defect),
          respond(
            500,
            View.page({ base, title, sections, current }, View.problem("The page failed; the server log has why."))
              .value
          )
        )
      )
    )

  /** A live section: the page holds it once, then the script swaps in `/live` fragments. */
  const fragment = <E extends DatabaseError.DatabaseError | PageProblem, R>(body: Effect.Effect<Html, E, R>) =>
    body.pipe(
      Effect.map((content) => respond(200, content.value)),
      Effect.catchAll((error: DatabaseError.DatabaseError | PageProblem) =>
        Effect.succeed(HttpServerResponse.unsafeJson({ error: true, message: error.message }, { status: 503 }))
      )
    )

  const live = (path: string, content: Html) =>
    html`<section data-live="${base}/${path}/live" data-every="${refresh}" aria-live="off">${content}</section>`

  let routes: HttpRouter.HttpRouter<never, Database.Database> = HttpRouter.empty.pipe(
    HttpRouter.get(base, HttpServerResponse.redirect(`${base}/${sections[0]?.path ?? "outbox"}`, { status: 302 })),
    HttpRouter.get(
      `${base}/app.js`,
      HttpServerResponse.text(script, { contentType: "text/javascript; charset=utf-8" })
    ),
    HttpRouter.get(`${base}/app.css`, HttpServerResponse.text(View.css, { contentType: "text/css; charset=utf-8" }))
  )

  if (checkpoint !== undefined) {
    const names = CheckpointTables.namesOf(checkpoint)
    const failures = sql.raw(names.failures)
    const events = sql.raw(names.events)
    const retryUrl = (id: unknown) => `${api}/v1/failures/${str(id)}/retry`

    const failuresPage = Effect.gen(function*() {
      const f = yield* listFilters(failureFilters, "created_at")
      const rows = yield* Database.execute(sql`
        select id, created_at, topic, group_id, coalesce(entity_id, metadata->>'key') as entity_id, event_type,
          error_class, error_message,
          (metadata->>'retryCount') as retries
        from ${failures} where ${f.where} order by created_at desc, id desc limit ${f.limit} offset ${f.offset}`)
      const counts = yield* Database.execute(sql`
        select topic, error_class, count(*)::int as n from ${failures} where ${f.where}
        group by topic, error_class order by n desc, topic, error_class limit 100`)
      const total = counts.reduce((n, c) => n + Number(c.n), 0)
      const matching = yield* Database.execute(sql`
        select id from ${failures} where ${f.where} order by created_at, id limit ${bulkLimit}`)
      const link = (row: Row) => html`<a href="${base}/failures/${str(row.id)}">${str(row.id)}</a>`
      return html`
${View.filters(`${base}/failures`, fields(failureFilters, timeFields), f.values)}
${
        View.table<Row>("Failures per topic and error", [
          { label: "Topic", cell: (r) => str(r.topic) },
          { label: "Error", cell: (r) => str(r.error_class) },
          { label: "Count", cell: (r) => str(r.n), numeric: true }
        ], counts)
      }
${
        matching.length === 0 ?
          "" :
          html`<p><button type="button" data-bulk="${
            JSON.stringify(matching.map((r) => retryUrl(r.id)))
          }" data-confirm="${`Retry ${matching.length} failure(s) matching these filters?`}">Retry ${matching.length}${
            total > matching.length ? ` of ${total}` : ""
          } matching</button></p>`
      }
${
        View.table<Row>("Failures", [
          { label: "Id", cell: link, numeric: true },
          { label: "Created", cell: (r) => View.time(r.created_at as string) },
          { label: "Topic", cell: (r) => str(r.topic) },
          { label: "Group", cell: (r) => str(r.group_id) },
          { label: "Entity or key", cell: (r) => str(r.entity_id) },
          { label: "Event type", cell: (r) => str(r.event_type) },
          { label: "Error", cell: (r) => str(r.error_class) },
          { label: "Message", cell: (r) => str(r.error_message).slice(0, 200) },
          { label: "Retries", cell: (r) => str(r.retries), numeric: true }
        ], rows)
      }
${View.pager(`${base}/failures`, f.values, f.offset, f.limit, rows.length, total)}`
    })

    const failurePage = Effect.gen(function*() {
      const id = yield* idOf("Failure")
      const rows = yield* Database.execute(sql`select * from ${failures} where id = ${id}::bigint`)
      if (rows.length === 0) return yield* new PageProblem({ status: 404, message: `Failure ${id} not found.` })
      const r = rows[0]
      return html`
${
        View.details([
          ["Id", str(r.id)],
          ["Created", View.time(r.created_at as string)],
          ["Topic", str(r.topic)],
          ["Group", str(r.group_id)],
          ["Entity", str(r.entity_id)],
          ["Key", JSON.stringify((r.metadata as { key?: unknown } | null)?.key ?? null)],
          ["Event time", View.time(r.event_time as string | null)],
          ["Event type", str(r.event_type)],
          ["Event version", str(r.event_version)],
          ["Checksum", str(r.checksum)],
          ["Error", str(r.error_class)],
          ["Message", str(r.error_message)]
        ])
      }
<p>
<button type="button" data-action="${retryUrl(r.id)}" data-method="POST" data-confirm="${`Retry failure ${id}?`}"
  data-busy="Retrying…" data-done="Retried: the handler succeeded." data-then="${base}/failures">Retry</button>
<button type="button" data-action="${api}/v1/failures/${id}" data-method="DELETE"
  data-confirm="${`Delete failure ${id}? Its message will not be handled.`}" data-busy="Deleting…" data-done="Deleted."
  data-then="${base}/failures">Delete</button>
</p>
${View.json("Payload", r.payload)}
${View.json("Metadata", r.metadata)}
<figure><figcaption>Cause chain</figcaption><pre tabindex="0">${str(r.error_backtrace)}</pre></figure>`
    })

    const eventsPage = Effect.gen(function*() {
      const f = yield* listFilters(eventFilters, "event_time")
      const rows = yield* Database.execute(sql`
        select id, topic, group_id, entity_id, event_time, event_type, event_version, created_at
        from ${events} where ${f.where}
        order by event_time desc nulls last, created_at desc limit ${f.limit} offset ${f.offset}`)
      const [{ n }] = yield* Database.execute(sql`select count(*)::int as n from ${events} where ${f.where}`)
      return html`
${View.filters(`${base}/events`, fields(eventFilters, timeFields), f.values)}
${
        View.table<Row>("Events", [
          { label: "Id", cell: (r) => html`<a href="${base}/events/${str(r.id)}">${str(r.id)}</a>`, numeric: true },
          { label: "Event time", cell: (r) => View.time(r.event_time as string | null) },
          { label: "Topic", cell: (r) => str(r.topic) },
          { label: "Group", cell: (r) => str(r.group_id) },
          { label: "Entity", cell: (r) => str(r.entity_id) },
          { label: "Type", cell: (r) => str(r.event_type) },
          { label: "Version", cell: (r) => str(r.event_version) },
          { label: "Stored", cell: (r) => View.time(r.created_at as string) }
        ], rows)
      }
${View.pager(`${base}/events`, f.values, f.offset, f.limit, rows.length, Number(n))}`
    })

    const eventPage = Effect.gen(function*() {
      const id = yield* idOf("Event")
      const rows = yield* Database.execute(sql`select * from ${events} where id = ${id}::bigint`)
      if (rows.length === 0) return yield* new PageProblem({ status: 404, message: `Event ${id} not found.` })
      const r = rows[0]
      return html`
${
        View.details([
          ["Id", str(r.id)],
          ["Topic", str(r.topic)],
          ["Group", str(r.group_id)],
          ["Entity", str(r.entity_id)],
          ["Event time", View.time(r.event_time as string | null)],
          ["Event type", str(r.event_type)],
          ["Event version", str(r.event_version)],
          ["Checksum", str(r.checksum)],
          ["Stored", View.time(r.created_at as string)]
        ])
      }
${View.json("Payload", r.payload)}`
    })

    routes = routes.pipe(
      HttpRouter.get(`${base}/failures`, show("failures", "Failures", failuresPage)),
      HttpRouter.get(`${base}/failures/:id`, show("failures", "Failure", failurePage)),
      HttpRouter.get(`${base}/events`, show("events", "Events", eventsPage)),
      HttpRouter.get(`${base}/events/:id`, show("events", "Event", eventPage))
    )
  }

  if (outbox !== undefined) {
    const messages = sql.raw(outbox.messages)
    const topicInfo = sql.raw(outbox.topicInfo)
    const relays = sql.raw(outbox.relays)
    const backlog = Effect.gen(function*() {
      const lanes = yield* Database.execute(sql`
        select topic, lane, count(*)::int as pending,
          extract(epoch from now() - min(created_at))::float8 as max_wait
        from ${messages} group by topic, lane order by topic, lane`)
      const leases = yield* Database.execute(sql`
        select topic, lane, locked_by, locked_at, error, retries, retry_at, last_processed_at
        from ${topicInfo} where locked_by is not null or error order by topic, lane`)
      const workers = yield* Database.execute(sql`
        select relay, workers, seen_at, extract(epoch from now() - seen_at)::float8 as age
        from ${relays} order by relay`)
      const topics = new Map<string, { pending: number; maxWait: number; lanes: Array<Row> }>()
      for (const l of lanes) {
        const t = topics.get(String(l.topic)) ?? { pending: 0, maxWait: 0, lanes: [] }
        t.pending += Number(l.pending)
        t.maxWait = Math.max(t.maxWait, Number(l.max_wait))
        t.lanes.push(l)
        topics.set(String(l.topic), t)
      }
      const perTopic = [...topics].map(([topic, t]) => ({ topic, ...t }))
      const total = perTopic.reduce((n, t) => n + t.pending, 0)
      return html`
<p><strong data-testid="outbox-total">${total}</strong> row(s) pending.</p>
${
        View.table("Pending per topic", [
          { label: "Topic", cell: (t) => t.topic },
          { label: "Pending", cell: (t) => html`<span data-topic="${t.topic}">${t.pending}</span>`, numeric: true },
          { label: "Max wait", cell: (t) => View.seconds(t.maxWait), numeric: true },
          {
            label: "Lanes",
            cell: (t) =>
              html`<details><summary>${t.lanes.length} lane(s)</summary>${
                View.table<Row>(`Lanes of ${t.topic}`, [
                  { label: "Lane", cell: (l) => str(l.lane), numeric: true },
                  { label: "Pending", cell: (l) => str(l.pending), numeric: true },
                  { label: "Max wait", cell: (l) => View.seconds(Number(l.max_wait)), numeric: true }
                ], t.lanes)
              }</details>`
          }
        ], perTopic)
      }
${
        View.table<Row>("Relays", [
          { label: "Relay", cell: (r) => str(r.relay) },
          { label: "Workers", cell: (r) => str(r.workers), numeric: true },
          { label: "Last seen", cell: (r) => `${View.seconds(Number(r.age))} ago` }
        ], workers)
      }
${
        View.table<Row>("Leases and failing lanes", [
          { label: "Topic", cell: (r) => str(r.topic) },
          { label: "Lane", cell: (r) => str(r.lane), numeric: true },
          { label: "Held by", cell: (r) => str(r.locked_by) },
          { label: "Since", cell: (r) => View.time(r.locked_at as string | null) },
          { label: "Failing", cell: (r) => r.error === true ? `yes (${str(r.retries)} retries)` : "no" },
          { label: "Next try", cell: (r) => View.time(r.retry_at as string | null) },
          { label: "Last processed", cell: (r) => View.time(r.last_processed_at as string | null) }
        ], leases)
      }`
    })
    routes = routes.pipe(
      HttpRouter.get(`${base}/outbox`, show("outbox", "Outbox", Effect.map(backlog, (b) => live("outbox", b)))),
      HttpRouter.get(`${base}/outbox/live`, fragment(backlog))
    )
  }

  if (lag !== undefined) {
    const measured = Effect.gen(function*() {
      const partitions = yield* lag.pipe(
        Effect.mapError((cause) =>
          new PageProblem({ status: 503, message: `Lag could not be measured: ${messageOf(cause)}` })
        )
      )
      const groups = new Map<string, number>()
      for (const p of partitions) {
        groups.set(`${p.groupId}\u0000${p.topic}`, (groups.get(`${p.groupId}\u0000${p.topic}`) ?? 0) + p.lag)
      }
      const totals = [...groups].map(([k, total]) => {
        const [groupId, topic] = k.split("\u0000")
        return { groupId, topic, total }
      })
      return html`
${
        View.table("Lag per group and topic", [
          { label: "Group", cell: (g) => g.groupId },
          { label: "Topic", cell: (g) => g.topic },
          { label: "Lag", cell: (g) => html`<span data-group="${g.groupId}">${g.total}</span>`, numeric: true }
        ], totals)
      }
${
        View.table("Lag per partition", [
          { label: "Group", cell: (p: PartitionLag) => p.groupId },
          { label: "Topic", cell: (p) => p.topic },
          { label: "Partition", cell: (p) => p.partition, numeric: true },
          { label: "Lag", cell: (p) => p.lag, numeric: true }
        ], partitions)
      }`
    })
    routes = routes.pipe(
      HttpRouter.get(
        `${base}/consumers`,
        show("consumers", "Consumers", Effect.map(measured, (b) => live("consumers", b)))
      ),
      HttpRouter.get(`${base}/consumers/live`, fragment(measured))
    )
  }
  return routes
}

const messageOf = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "message" in cause && typeof cause.message === "string"
    ? cause.message
    : String(cause)

/**
 * The console on a server of its own (for the console beside the events API, concat `router` to that server's).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options & { readonly port?: number | undefined; readonly host?: string | undefined } = {}
): Layer.Layer<never, HttpServerError.ServeError, Database.Database> =>
  HttpServer.serve(router(options)).pipe(
    HttpServer.withLogAddress,
    Layer.provide(NodeHttpServer.layer(() => createServer(), { port: options.port ?? 9293, host: options.host }))
  )

/**
 * The console's routes on the events API's server (`EventsServer.layer(options, Console.layerRoutes())`): one port,
 * and the buttons' calls meet the API's token check.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRoutes = (options: Options = {}): Layer.Layer<never, never, Database.Database> =>
  HttpApiBuilder.Router.use((api) =>
    Effect.flatMap(
      Database.Database,
      (database) => api.concat(router(options).pipe(HttpRouter.provideService(Database.Database, database)))
    )
  )
