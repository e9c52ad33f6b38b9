// The time-based poller's promise as a property: concurrent writers in random interleavings, some holding their
// transaction open long after writing (their rows carry the transaction's start as updated_at and commit late),
// while the poller runs every few milliseconds with no delay. Every row must reach the outbox in its final state.
import { Database, Poller } from "@deimos/sql"
import { describe, expect, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { DatabaseIn, schemaFor, waitUntil } from "./outboxFixtures.js"
import {
  createOrders,
  Json,
  migrate,
  newTopic,
  orderRecords,
  ordersTable,
  outboxed,
  outboxIn
} from "./pollerFixtures.js"

const schema = schemaFor("poller_property")
const Env = Layer.provideMerge(
  Layer.mergeAll(Json, outboxIn(schema), Layer.effectDiscard(migrate(Poller.migrations({ schema }), schema))),
  DatabaseIn(schema, { max: 12 })
)

/** One transaction of a writer: inserts, updates of rows committed earlier (picked by index), then a hold. */
const transaction = FastCheck.record({
  start: FastCheck.integer({ min: 0, max: 60 }),
  inserts: FastCheck.integer({ min: 0, max: 3 }),
  updates: FastCheck.array(FastCheck.nat(), { maxLength: 3 }),
  // most commit at once; some hold their transaction open long after writing
  hold: FastCheck.oneof(FastCheck.constant(0), FastCheck.constant(0), FastCheck.integer({ min: 50, max: 250 }))
})
const writers = FastCheck.array(FastCheck.array(transaction, { minLength: 1, maxLength: 4 }), {
  minLength: 2,
  maxLength: 5
})

let run = 0

describe("Poller property", () => {
  layer(Env, { timeout: 120_000, excludeTestServices: true })((it) => {
    for (
      const guard of [
        { name: "every open transaction guards, no delay", mode: "transactions", delayTime: 0 },
        // a writer writes within milliseconds of its start: well inside the delay
        { name: "the table's writers guard, half a second's delay", mode: "tableWriters", delayTime: "500 millis" }
      ] as const
    ) {
      it.effect.prop(
        `${guard.name}: no row is missed, every final state is sent`,
        [writers],
        ([scenario]) =>
          Effect.gen(function*() {
            const name = `interleaved_${guard.mode}_${++run}`
            const table = `"${schema}"."${name}"`
            yield* createOrders(schema, name)
            const topic = newTopic(name)
            const records = orderRecords(schema, topic, {}, ordersTable(schema, name))
            const poller = yield* Effect.fork(Poller.run({
              name,
              schema,
              producers: [records],
              mode: { mode: "time", delayTime: guard.delayTime, snapshotGuard: guard.mode },
              batchSize: 7,
              runEvery: "15 millis"
            }))
            let nextId = 0
            const committed: Array<number> = []
            yield* Effect.forEach(scenario, (txs) =>
              Effect.forEach(txs, (tx) =>
                Effect.gen(function*() {
                  yield* Effect.sleep(tx.start)
                  const ids = Array.from({ length: tx.inserts }, () => ++nextId)
                  // in one order in every transaction, so that writers never deadlock
                  const updated = committed.length === 0
                    ? []
                    : [...new Set(tx.updates.map((i) => committed[i % committed.length]))].sort((a, b) => a - b)
                  yield* Database.transaction(Effect.gen(function*() {
                    for (const id of ids) {
                      yield* Database.execute(
                        sql.raw(`insert into ${table} (id, customer_name, amount) values (${id}, 'w', 0)`)
                      )
                    }
                    for (const id of updated) {
                      yield* Database.execute(sql.raw(`update ${table} set amount = amount + 1, updated_at = now()
                      where id = ${id}`))
                    }
                    if (tx.hold > 0) yield* Effect.sleep(tx.hold)
                  }))
                  committed.push(...ids)
                }), { discard: true }), { concurrency: "unbounded", discard: true })
            const final = new Map(
              (yield* Database.execute(sql.raw(`select id::int as id, amount from ${table}`))).map((r) => [
                Number(r.id),
                Number(r.amount)
              ])
            )
            expect(final.size).toBe(nextId)
            const latest = Effect.map(outboxed(schema, topic), (sent) => {
              const seen = new Map<number, number>()
              for (const m of sent) {
                const v = m.value as { id: number; amount: number }
                seen.set(v.id, Math.max(seen.get(v.id) ?? -1, v.amount))
              }
              return seen
            })
            // every row in its final state, within a bounded wait
            yield* waitUntil(Effect.map(latest, (seen) => [...final].every(([id, amount]) => seen.get(id) === amount)))
            yield* Fiber.interrupt(poller)
            const seen = yield* latest
            expect([...seen.keys()].sort((a, b) => a - b)).toEqual([...final.keys()].sort((a, b) => a - b))
          }),
        { fastCheck: { numRuns: 6, endOnFailure: true } }
      )
    }
  })
})
