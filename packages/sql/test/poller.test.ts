// Pollers against real Postgres: the time-based cursor and its tie-break, the first poll, rows updated during a
// poll, a transaction committing late, state-based marking, several producers, the lease, retries and skips.
import { Producer, type SchemaRef } from "@deimos/core"
import { Database, Poller, RecordProducer } from "@deimos/sql"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import { DatabaseIn, schemaFor, waitUntil } from "./outboxFixtures.js"
import {
  createOrders,
  Json,
  migrate,
  newTopic,
  Order,
  orderRecords,
  ordersTable,
  outboxed,
  outboxIn
} from "./pollerFixtures.js"

const schema = schemaFor("poller")

/** An orders table of its own and its record producer on a fresh topic. */
const orders = (name: string, options: Partial<RecordProducer.Options<SchemaRef.Type<typeof Order>, number>> = {}) =>
  Effect.gen(function*() {
    yield* createOrders(schema, name)
    const topic = newTopic(name)
    return {
      table: `"${schema}"."${name}"`,
      topic,
      records: orderRecords(schema, topic, options, ordersTable(schema, name))
    }
  })

const insert = (table: string, from: number, to: number, extra = "") =>
  Database.execute(sql.raw(`insert into ${table} (id, customer_name, amount${extra === "" ? "" : ", updated_at"})
    select n, 'c' || n, n${extra === "" ? "" : `, ${extra}`} from generate_series(${from}, ${to}) n`))

const cursor = (name: string) =>
  Effect.map(
    Database.execute(sql`select last_sent::text as ts, last_sent_id::text as id, locked_by from
      ${sql.raw(`"${schema}".poll_info`)} where producer = ${name}`),
    (rows) => rows[0] as { ts: string; id: string; locked_by: string | null } | undefined
  )

const ids = (topic: string) => Effect.map(outboxed(schema, topic), (sent) => sent.map((m) => m.value?.id))

const timeBased = (
  name: string,
  records: RecordProducer.Any,
  mode: Partial<Poller.TimeBased> = {},
  options: Partial<Poller.Options> = {}
): Poller.Options => ({
  name,
  schema,
  producers: [records],
  // only writers of the test's own table hold the window back: other sessions on the shared test database must not
  // (the "transactions" guard is tested below and in the property test)
  mode: { mode: "time", delayTime: 0, snapshotGuard: "tableWriters", ...mode },
  batchSize: 10,
  ...options
})

const Env = Layer.provideMerge(
  Layer.mergeAll(Json, outboxIn(schema), Layer.effectDiscard(migrate(Poller.migrations({ schema }), schema))),
  DatabaseIn(schema)
)

describe("Poller", () => {
  layer(Env, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("migrates poll_info once", () =>
      Effect.gen(function*() {
        expect(yield* migrate(Poller.migrations({ schema }), schema)).toEqual([])
        const applied = yield* Database.execute(sql.raw(`select name from "${schema}".deimos_migrations`))
        expect(applied.map((r) => r.name)).toContain(`${schema}.poller_1`)
      }))

    it.effect("time-based: batches in (timestamp, id) order, rows of one timestamp split across batches, cursor saved", () =>
      Effect.gen(function*() {
        const { records, table, topic } = yield* orders("tie_break")
        // 25 rows of one transaction share one timestamp: the id breaks the tie at every batch boundary
        yield* Database.transaction(insert(table, 1, 25))
        yield* insert(table, 26, 30, "now() - interval '1 hour'")
        const options = timeBased("tie_break", records)
        const once = Poller.poll(options)
        const result = yield* once
        expect(result).toEqual({ leased: true, published: 30, invalid: 0, skippedBatches: 0 })
        expect(yield* ids(topic)).toEqual([26, 27, 28, 29, 30, ...Array.from({ length: 25 }, (_, i) => i + 1)])
        const saved = yield* cursor("tie_break")
        expect(saved?.id).toBe("25")
        expect(saved?.locked_by).toBeNull()
        // nothing new: nothing sent (the same effect run again counts its own rows); an update is sent once
        expect((yield* once).published).toBe(0)
        yield* Database.execute(sql.raw(`update ${table} set amount = 99, updated_at = now() where id = 3`))
        expect((yield* Poller.poll(options)).published).toBe(1)
        expect((yield* outboxed(schema, topic)).at(-1)?.value).toEqual({ id: 3, customerName: "c3", amount: 99 })
      }))

    it.effect("the first poll sends rows of every id (startFromBeginning); without it, only what comes after", () =>
      Effect.gen(function*() {
        const { records, table, topic } = yield* orders("first_poll")
        yield* insert(table, 1, 5)
        yield* Poller.poll(timeBased("first_poll", records))
        expect(yield* ids(topic)).toEqual([1, 2, 3, 4, 5])
        const late = yield* orders("from_now")
        yield* insert(late.table, 1, 5, "now() - interval '1 minute'")
        yield* Poller.poll(timeBased("from_now", late.records, { startFromBeginning: false }))
        expect(yield* ids(late.topic)).toEqual([])
        // a lower id updated after the first poll is sent (the saved id only breaks ties of equal timestamps)
        yield* Database.execute(sql.raw(`update ${late.table} set amount = 10, updated_at = now() where id = 1`))
        yield* Poller.poll(timeBased("from_now", late.records, { startFromBeginning: false }))
        expect(yield* ids(late.topic)).toEqual([1])
      }))

    it.effect("a row updated during a long poll (after its batch was sent) is sent again", () =>
      Effect.gen(function*() {
        let once = false
        const { records, table, topic } = yield* orders("long_poll", {
          // while the poll goes on, row 1 (already sent) is updated
          postProcess: () =>
            once ? Effect.void : Effect.zipRight(
              Effect.sync(() => once = true),
              Database.execute(
                sql.raw(`update "${schema}".long_poll set amount = 1000, updated_at = now() where id = 1`)
              )
            )
        })
        yield* insert(table, 1, 30)
        const options = timeBased("long_poll", records)
        yield* Poller.poll(options)
        yield* Poller.poll(options)
        const sent = yield* outboxed(schema, topic)
        expect(sent.filter((m) => m.value?.id === 1).map((m) => m.value?.amount)).toEqual([1, 1000])
        expect(new Set(sent.map((m) => m.value?.id)).size).toBe(30)
      }))

    it.effect("a transaction that began before the window and commits after it: held back by the guard, lost without", () =>
      Effect.gen(function*() {
        for (const guard of ["transactions", "tableWriters", "none"] as const) {
          const name = `late_${guard}`
          const { records, table, topic } = yield* orders(name)
          const inserted = yield* Deferred.make<void>()
          const commit = yield* Deferred.make<void>()
          // a long transaction: its row's updated_at is its start, and it commits only after the polls below
          const long = yield* Effect.fork(Database.transaction(Effect.gen(function*() {
            yield* insert(table, 1, 1)
            yield* Deferred.succeed(inserted, undefined)
            yield* Deferred.await(commit)
          })))
          yield* Deferred.await(inserted)
          yield* insert(table, 2, 2)
          const options = timeBased(name, records, { snapshotGuard: guard })
          yield* Poller.poll(options)
          // with a guard the window ends before the open transaction began: row 2 waits too
          expect(yield* ids(topic)).toEqual(guard === "none" ? [2] : [])
          yield* Deferred.succeed(commit, undefined)
          yield* Fiber.join(long)
          if (guard === "none") {
            yield* Poller.poll(options)
            // row 1's timestamp is behind the cursor: lost
            expect(yield* ids(topic)).toEqual([2])
          } else {
            // (other sessions' transactions on the shared database may hold "transactions" back a little longer)
            yield* waitUntil(Effect.zipRight(Poller.poll(options), Effect.map(ids(topic), (sent) => sent.length === 2)))
            expect(yield* ids(topic)).toEqual([1, 2])
          }
        }
      }))

    it.effect("each poll runs in a span deimos-db-poller naming the poller; a failed poll says what failed", () =>
      Effect.gen(function*() {
        const spans: Array<string> = []
        const { records, table } = yield* orders("spanned", {
          postProcess: () =>
            Effect.map(Effect.option(Effect.currentSpan), (span) => {
              if (span._tag === "Some") spans.push(`${span.value.name} ${String(span.value.attributes.get("poller"))}`)
            })
        })
        yield* insert(table, 1, 3)
        yield* Poller.poll(timeBased("spanned", records))
        expect(spans).toEqual(["deimos-db-poller spanned"])
        // a table that is not there: the poll fails, and says which relation
        const missing = { ...records, tableName: `${schema}.no_such_table` }
        const error = yield* Effect.flip(Poller.poll(timeBased("missing", missing)))
        expect(error.message).toContain("no_such_table")
      }))

    it.effect("fullTable sends every row on every poll", () =>
      Effect.gen(function*() {
        const { records, table, topic } = yield* orders("full_table")
        yield* insert(table, 1, 12)
        const options = timeBased("full_table", records, { fullTable: true })
        yield* Poller.poll(options)
        yield* Poller.poll(options)
        const sent = yield* ids(topic)
        expect(sent).toEqual([
          ...Array.from({ length: 12 }, (_, i) => i + 1),
          ...Array.from({ length: 12 }, (_, i) => i + 1)
        ])
      }))

    it.effect("a row the schema refuses is counted and reported; the rest of its batch is published", () =>
      Effect.gen(function*() {
        const { records, table, topic } = yield* orders("refused")
        yield* insert(table, 1, 15)
        yield* Database.execute(sql.raw(`update ${table} set amount = -1 where id = 4`))
        const counter = Metric.tagged(Poller.invalidRows, "poller", "refused")
        const before = (yield* Metric.value(counter)).count
        const result = yield* Poller.poll(timeBased("refused", records))
        expect(result).toMatchObject({ published: 14, invalid: 1, skippedBatches: 0 })
        expect((yield* ids(topic)).sort((a, b) => Number(a) - Number(b))).toEqual(
          Array.from({ length: 15 }, (_, i) => i + 1).filter((n) => n !== 4)
        )
        expect((yield* Metric.value(counter)).count - before).toBe(1)
      }))

    it.effect("state-based: the query's rows are marked published or failed with a timestamp", () =>
      Effect.gen(function*() {
        const { records, table, topic } = yield* orders("state")
        yield* insert(table, 1, 25)
        yield* Database.execute(sql.raw(`update ${table} set amount = -1 where id = 13`))
        const options: Poller.Options = {
          name: "state",
          schema,
          producers: [records],
          batchSize: 10,
          mode: {
            mode: "state",
            query: (limit) =>
              sql`select * from ${sql.raw(table)} where publish_state is null order by id limit ${limit}`
          }
        }
        expect(yield* Poller.poll(options)).toMatchObject({ published: 24, invalid: 1 })
        const states = yield* Database.execute(sql.raw(`select id, publish_state, published_at is not null as at
          from ${table} order by id`))
        expect(states.filter((r) => r.publish_state === "published" && r.at === true)).toHaveLength(24)
        expect(states.filter((r) => r.publish_state === "failed").map((r) => Number(r.id))).toEqual([13])
        expect((yield* ids(topic)).length).toBe(24)
        expect((yield* Poller.poll(options)).published).toBe(0)
      }))

    it.effect("one poller publishes its query to several producers", () =>
      Effect.gen(function*() {
        const { records, table, topic } = yield* orders("several")
        const second = newTopic("several-copy")
        const copy = orderRecords(schema, second, {}, ordersTable(schema, "several"))
        yield* insert(table, 1, 5)
        yield* Poller.poll({ ...timeBased("several", records), producers: [records, copy] })
        expect(yield* ids(topic)).toEqual([1, 2, 3, 4, 5])
        expect(yield* ids(second)).toEqual([1, 2, 3, 4, 5])
      }))

    it.effect("the lease: two processes polling at once publish each row once; a dead holder's lease runs out", () =>
      Effect.gen(function*() {
        const { records, table, topic } = yield* orders("leased")
        yield* insert(table, 1, 100)
        const a = timeBased("leased", records, {}, { workerId: "a" })
        const b = timeBased("leased", records, {}, { workerId: "b" })
        const [ra, rb] = yield* Effect.all([Poller.poll(a), Poller.poll(b)], { concurrency: 2 })
        expect(ra.published + rb.published).toBe(100)
        expect(yield* ids(topic)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1))
        // a holder that died holding the lease
        yield* Database.execute(sql.raw(`update "${schema}".poll_info set locked_by = 'dead', locked_at = now()
          where producer = 'leased'`))
        yield* insert(table, 101, 105)
        expect((yield* Poller.poll({ ...a, leaseTimeout: "1 minute" })).leased).toBe(false)
        yield* Database.execute(sql.raw(`update "${schema}".poll_info set locked_at = now() - interval '2 seconds'
          where producer = 'leased'`))
        expect(yield* Poller.poll({ ...a, leaseTimeout: "1 second" })).toMatchObject({ leased: true, published: 5 })
      }))

    it.effect("a batch failing with an error that is not retriable is tried `retries` times, then skipped and counted", () =>
      Effect.gen(function*() {
        const { table } = yield* orders("skipped")
        const topic = newTopic("skipped")
        let tries = 0
        // row 15's payload has no key: a MissingKey error, which trying again cannot mend
        const records = RecordProducer.make({
          producer: Producer.make({ topic, schema: Order, keyConfig: { field: "customerName" } }),
          table: ordersTable(schema, "skipped"),
          generatePayload: (attributes) => {
            if (attributes.id === 15) tries++
            return (attributes.id === 15 ? { ...attributes, customerName: undefined } : attributes) as never
          }
        })
        yield* insert(table, 1, 30)
        const result = yield* Poller.poll(timeBased("skipped", records, {}, { retries: 2 }))
        expect(result).toMatchObject({ published: 20, skippedBatches: 1 })
        expect(tries).toBe(3)
        expect(yield* ids(topic)).toEqual([
          ...Array.from({ length: 10 }, (_, i) => i + 1),
          ...Array.from({ length: 10 }, (_, i) => i + 21)
        ])
        expect((yield* Metric.value(Metric.tagged(Poller.skippedBatches, "poller", "skipped"))).count).toBe(1)
        expect((yield* cursor("skipped"))?.id).toBe("30")
      }))

    it.scoped("as a layer: pollers run as fibers of its scope, every runEvery; closing it gives the lease back", () =>
      Effect.gen(function*() {
        const { records, table, topic } = yield* orders("layered")
        const other = yield* orders("layered_other")
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(
          Poller.layer([
            timeBased("layered", records, {}, { runEvery: "100 millis" }),
            timeBased("layered_other", other.records, {}, { runEvery: "100 millis" })
          ]),
          scope
        )
        yield* insert(table, 1, 5)
        yield* insert(other.table, 1, 3)
        yield* waitUntil(Effect.map(ids(topic), (sent) => sent.length === 5))
        yield* insert(table, 6, 8)
        yield* waitUntil(Effect.map(ids(topic), (sent) => sent.length === 8))
        yield* waitUntil(Effect.map(ids(other.topic), (sent) => sent.length === 3))
        yield* Scope.close(scope, Exit.void)
        expect((yield* cursor("layered"))?.locked_by).toBeNull()
      }))
  })
})
