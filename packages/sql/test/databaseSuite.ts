/**
 * The conformance suite of `Database`: what every implementation (a postgres.js pool, PGlite) must do, registered by
 * each implementation's test file against its own layer. Real time throughout: the database is real.
 */
import { expect, layer as withLayer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { integer, pgTable, text } from "drizzle-orm/pg-core"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Database from "../src/Database.js"
import { DatabaseError } from "../src/DatabaseError.js"

/** What an implementation can do. */
export interface SuiteOptions {
  /**
   * Whether a transaction and work outside it run at the same time (a pool: yes; PGlite's one connection: no, the work
   * outside waits for the transaction to end). Serialization failures and deadlocks need two at once.
   * @default true
   */
  readonly concurrentTransactions?: boolean
}

/** The error a test body fails with on purpose. */
class Boom extends Data.TaggedError("Boom")<{}> {}

/** A table of its own per test: `id` (the primary key) and `label`. */
const fixture = (name: string) => {
  const table = pgTable(name, { id: integer("id").primaryKey(), label: text("label").notNull() })
  return {
    table,
    create: Effect.zipRight(
      Database.execute(sql`drop table if exists ${table}`),
      Database.execute(sql`create table ${table} (id integer primary key, label text not null)`)
    ),
    /** A write through the user's own drizzle query. */
    insert: (id: number, label: string) => Database.use((db) => db.insert(table).values({ id, label })),
    /** A write through raw SQL. */
    insertRaw: (id: number, label: string) =>
      Database.execute(sql`insert into ${table} (id, label) values (${id}, ${label})`),
    update: (id: number, suffix: string) =>
      Database.execute(sql`update ${table} set label = label || ${suffix} where id = ${id}`),
    labels: Effect.map(
      Database.use((db) => db.select({ label: table.label }).from(table).orderBy(table.id)),
      (rows) => rows.map((row) => row.label)
    )
  }
}

/** The payloads of `NOTIFY channel`, gathered in a queue while the scope is open. */
const listening = (
  channel: string
): Effect.Effect<Queue.Queue<string>, DatabaseError, Database.Database | Scope.Scope> =>
  Effect.gen(function*() {
    const database = yield* Database.Database
    const payloads = yield* database.listen(channel)
    const received = yield* Queue.unbounded<string>()
    yield* Effect.forkScoped(Stream.runForEach(payloads, (payload) => Queue.offer(received, payload)))
    return received
  })

/** The next payload, or none within two seconds. */
const next = (received: Queue.Queue<string>) => Effect.timeoutOption(Queue.take(received), "2 seconds")

/** How many payloads arrived in a while (for what must not arrive). */
const arrivedWithin = (received: Queue.Queue<string>, millis: number) =>
  Effect.zipRight(Effect.sleep(millis), Queue.size(received))

const notify = (channel: string) => Effect.flatMap(Database.Database, (database) => database.notify(channel))
const inTransaction = Effect.flatMap(Database.Database, (database) => database.inTransaction)
const setting = (name: string) =>
  Effect.map(
    Database.execute(sql`select current_setting(${name}) as value`),
    (rows) => rows[0]?.value
  )

/**
 * A test that hangs (a transaction that never ends cannot be interrupted) fails within ten seconds instead of holding
 * the file until vitest's hooks time out.
 */
const guarded = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(
    Effect.disconnect,
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the test hangs: no end in 10 seconds") })
  )

/**
 * Registers the conformance tests of `Database` for `layer` (built once for them all). The tests create tables of
 * their own, unqualified: give the layer a schema (or a database) of its own.
 */
export const suite = <E>(
  name: string,
  layer: Layer.Layer<Database.Database, E>,
  options: SuiteOptions = {}
): void => {
  const concurrent = options.concurrentTransactions ?? true
  // NOTIFY channels belong to the whole database, not to a schema: names of this run's own
  const run = Math.random().toString(36).slice(2, 10)
  const channel = (name: string) => `suite_${name}_${run}`
  withLayer(layer, { excludeTestServices: true, timeout: "60 seconds" })(`Database conformance: ${name}`, (it) => {
    const effect = (title: string, self: () => Effect.Effect<void, unknown, Database.Database>) =>
      it.effect(title, () => guarded(self()), 15_000)
    const scoped = (title: string, self: () => Effect.Effect<void, unknown, Database.Database | Scope.Scope>) =>
      it.scoped(title, () => guarded(self()), 15_000)

    effect("a query outside a transaction commits on its own", () =>
      Effect.gen(function*() {
        const t = fixture("outside_commits")
        yield* t.create
        expect(yield* inTransaction).toBe(false)
        yield* t.insert(1, "outside")
        // a transaction that fails afterwards does not take the write with it
        const error = yield* Effect.flip(Database.transaction(Effect.zipRight(t.insert(2, "inside"), new Boom())))
        expect(error).toBeInstanceOf(Boom)
        expect(yield* t.labels).toEqual(["outside"])
      }))

    effect(
      "a query asked to be prepared answers as the same query unprepared, run after run, in or out of one",
      () =>
        Effect.gen(function*() {
          const t = fixture("prepared_same")
          yield* t.create
          yield* t.insertRaw(1, "one")
          yield* t.insertRaw(2, "two")
          const query = (from: number) => sql`select id, label from ${t.table} where id >= ${from} order by id`
          const plain = yield* Database.execute(query(1))
          expect(plain).toEqual([{ id: 1, label: "one" }, { id: 2, label: "two" }])
          // twice with other parameters: the second run is the kept statement's
          expect(yield* Database.execute(query(1), { prepare: true })).toEqual(plain)
          expect(yield* Database.execute(query(2), { prepare: true })).toEqual([{ id: 2, label: "two" }])
          expect(yield* Database.transaction(Database.execute(query(2), { prepare: true }))).toEqual([
            { id: 2, label: "two" }
          ])
          // a prepared write rolls back with its transaction, and its error is the unprepared one's
          const insert = (id: number) => sql`insert into ${t.table} (id, label) values (${id}, 'again')`
          const error = yield* Effect.flip(Database.transaction(Effect.zipRight(
            Database.execute(insert(3), { prepare: true }),
            Database.execute(insert(1), { prepare: true })
          )))
          expect(error).toMatchObject({ _tag: "DatabaseError", reason: "Constraint", code: "23505" })
          expect(yield* t.labels).toEqual(["one", "two"])
        })
    )

    effect(
      "a committed transaction answers the body's value and its writes are there after it",
      () =>
        Effect.gen(function*() {
          const t = fixture("commit_visible")
          yield* t.create
          const value = yield* Database.transaction(Effect.gen(function*() {
            yield* t.insert(1, "drizzle")
            yield* t.insertRaw(2, "raw")
            expect(yield* t.labels).toEqual(["drizzle", "raw"])
            return "done"
          }))
          expect(value).toBe("done")
          expect(yield* t.labels).toEqual(["drizzle", "raw"])
          // and a later transaction reads them
          expect(yield* Database.transaction(t.labels)).toEqual(["drizzle", "raw"])
        })
    )

    effect(
      "a failure rolls back everything the body wrote and is the transaction's error",
      () =>
        Effect.gen(function*() {
          const t = fixture("failure_rolls_back")
          yield* t.create
          const exit = yield* Effect.exit(Database.transaction(Effect.gen(function*() {
            yield* t.insert(1, "drizzle")
            yield* t.insertRaw(2, "raw")
            return yield* new Boom()
          })))
          expect(Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()).toEqual(
            Option.some(new Boom())
          )
          expect(yield* t.labels).toEqual([])
        })
    )

    effect(
      "a defect (Effect.die) rolls back everything the body wrote and is the transaction's defect",
      () =>
        Effect.gen(function*() {
          const t = fixture("defect_rolls_back")
          yield* t.create
          const bug = new Error("a bug")
          const exit = yield* Effect.exit(Database.transaction(Effect.gen(function*() {
            yield* t.insert(1, "drizzle")
            yield* t.insertRaw(2, "raw")
            return yield* Effect.die(bug)
          })))
          expect(Exit.isFailure(exit) ? Cause.dieOption(exit.cause) : Option.none()).toEqual(Option.some(bug))
          expect(yield* t.labels).toEqual([])
        })
    )

    effect(
      "an error thrown inside `use` rolls back everything the body wrote, and is kept",
      () =>
        Effect.gen(function*() {
          const t = fixture("thrown_rolls_back")
          yield* t.create
          const thrown = new Error("thrown by the user's callback")
          const exit = yield* Effect.exit(Database.transaction(Effect.gen(function*() {
            yield* t.insertRaw(1, "raw")
            yield* Database.use(async (db) => {
              await db.insert(t.table).values({ id: 2, label: "drizzle" })
              throw thrown
            })
          })))
          expect(Exit.isFailure(exit)).toBe(true)
          // the thrown error is the defect, or the cause of the failure: either way it is not lost
          const squashed = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
          expect(squashed instanceof DatabaseError ? squashed.cause : squashed).toBe(thrown)
          expect(yield* t.labels).toEqual([])
        })
    )

    effect(
      "interrupting the fiber running a transaction while its body waits rolls everything back",
      () =>
        Effect.gen(function*() {
          const t = fixture("interrupt_rolls_back")
          yield* t.create
          const written = yield* Deferred.make<void>()
          const fiber = yield* Effect.fork(Database.transaction(Effect.gen(function*() {
            yield* t.insert(1, "drizzle")
            yield* t.insertRaw(2, "raw")
            yield* Deferred.succeed(written, undefined)
            return yield* Effect.never
          })))
          yield* Deferred.await(written)
          const exit = yield* Fiber.interrupt(fiber)
          expect(Exit.isInterrupted(exit)).toBe(true)
          expect(yield* t.labels).toEqual([])
          // the connection is back in service, outside any transaction
          expect(yield* inTransaction).toBe(false)
          yield* t.insert(3, "after")
          expect(yield* t.labels).toEqual(["after"])
        })
    )

    effect(
      "a nested transaction is a savepoint: an inner failure caught by the outer body undoes only the inner writes",
      () =>
        Effect.gen(function*() {
          const t = fixture("savepoint_failure")
          yield* t.create
          yield* Database.transaction(Effect.gen(function*() {
            yield* t.insert(1, "outer before")
            const inner = yield* Effect.flip(Database.transaction(Effect.gen(function*() {
              yield* t.insert(2, "inner drizzle")
              yield* t.insertRaw(3, "inner raw")
              expect(yield* t.labels).toEqual(["outer before", "inner drizzle", "inner raw"])
              return yield* new Boom()
            })))
            expect(inner).toBeInstanceOf(Boom)
            expect(yield* t.labels).toEqual(["outer before"])
            // the outer transaction is still usable
            yield* t.insert(4, "outer after")
          }))
          expect(yield* t.labels).toEqual(["outer before", "outer after"])
        })
    )

    effect(
      "a nested transaction that succeeds commits with the outer one, and rolls back with it",
      () =>
        Effect.gen(function*() {
          const t = fixture("savepoint_success")
          yield* t.create
          yield* Database.transaction(Effect.gen(function*() {
            yield* t.insert(1, "outer")
            const value = yield* Database.transaction(Effect.as(t.insert(2, "inner"), "inner value"))
            expect(value).toBe("inner value")
            yield* Database.transaction(Database.transaction(t.insertRaw(3, "inner inner")))
          }))
          expect(yield* t.labels).toEqual(["outer", "inner", "inner inner"])
          const error = yield* Effect.flip(Database.transaction(Effect.gen(function*() {
            yield* Database.transaction(t.insert(4, "released savepoint"))
            return yield* new Boom()
          })))
          expect(error).toBeInstanceOf(Boom)
          expect(yield* t.labels).toEqual(["outer", "inner", "inner inner"])
        })
    )

    effect("fibers forked inside a transaction see it and write into it", () =>
      Effect.gen(function*() {
        const t = fixture("forked_fibers")
        yield* t.create
        const error = yield* Effect.flip(Database.transaction(Effect.gen(function*() {
          yield* t.insert(1, "body")
          const child = yield* Effect.fork(Effect.gen(function*() {
            const seen = yield* t.labels
            yield* t.insert(2, "child")
            return { inTransaction: yield* inTransaction, seen }
          }))
          expect(yield* Fiber.join(child)).toEqual({ inTransaction: true, seen: ["body"] })
          // several at once, on the transaction's one connection
          yield* Effect.all([t.insert(3, "a"), t.insertRaw(4, "b"), t.insert(5, "c")], { concurrency: "unbounded" })
          expect(yield* t.labels).toEqual(["body", "child", "a", "b", "c"])
          return yield* new Boom()
        })))
        expect(error).toBeInstanceOf(Boom)
        expect(yield* t.labels).toEqual([])
      }))

    if (concurrent) {
      effect(
        "work outside an open transaction does not see its writes and commits on its own",
        () =>
          Effect.gen(function*() {
            const t = fixture("outside_concurrent")
            yield* t.create
            const written = yield* Deferred.make<void>()
            const checked = yield* Deferred.make<void>()
            const transaction = yield* Effect.fork(Database.transaction(Effect.gen(function*() {
              yield* t.insert(1, "uncommitted")
              yield* Deferred.succeed(written, undefined)
              yield* Deferred.await(checked)
              return yield* new Boom()
            })))
            yield* Deferred.await(written)
            const outside = yield* Effect.fork(Effect.gen(function*() {
              const seen = yield* t.labels
              yield* t.insert(2, "independent")
              return { inTransaction: yield* inTransaction, seen }
            }))
            expect(yield* Fiber.join(outside)).toEqual({ inTransaction: false, seen: [] })
            yield* Deferred.succeed(checked, undefined)
            expect(yield* Effect.flip(Fiber.join(transaction))).toBeInstanceOf(Boom)
            expect(yield* t.labels).toEqual(["independent"])
          })
      )
    } else {
      effect(
        "work outside an open transaction waits until it ends, and does not see its rolled-back writes",
        () =>
          Effect.gen(function*() {
            const t = fixture("outside_waits")
            yield* t.create
            const written = yield* Deferred.make<void>()
            const ended = yield* Ref.make(false)
            const transaction = yield* Effect.fork(Database.transaction(Effect.gen(function*() {
              yield* t.insert(1, "uncommitted")
              yield* Deferred.succeed(written, undefined)
              yield* Effect.sleep("200 millis")
              yield* Ref.set(ended, true)
              return yield* new Boom()
            })))
            yield* Deferred.await(written)
            const outside = yield* Effect.fork(Effect.gen(function*() {
              const seen = yield* t.labels
              return { inTransaction: yield* inTransaction, seen, afterTheTransaction: yield* Ref.get(ended) }
            }))
            expect(yield* Fiber.join(outside)).toEqual({ inTransaction: false, seen: [], afterTheTransaction: true })
            expect(yield* Effect.flip(Fiber.join(transaction))).toBeInstanceOf(Boom)
          })
      )
    }

    effect("inTransaction says whether a transaction is open in this fiber", () =>
      Effect.gen(function*() {
        expect(yield* inTransaction).toBe(false)
        const inside = yield* Database.transaction(Effect.gen(function*() {
          const outer = yield* inTransaction
          const nested = yield* Database.transaction(inTransaction)
          return { outer, nested }
        }))
        expect(inside).toEqual({ outer: true, nested: true })
        yield* Effect.flip(Database.transaction(new Boom()))
        expect(yield* inTransaction).toBe(false)
      }))

    effect("the isolation level and access mode asked for are the transaction's", () =>
      Effect.gen(function*() {
        const isolation = setting("transaction_isolation")
        expect(yield* Database.transaction(isolation)).toBe("read committed")
        expect(yield* Database.transaction(isolation, { isolationLevel: "serializable" })).toBe("serializable")
        expect(yield* Database.transaction(isolation, { isolationLevel: "repeatable read" })).toBe("repeatable read")
        expect(yield* Database.transaction(setting("transaction_read_only"), { accessMode: "read only" })).toBe("on")
        const t = fixture("read_only")
        yield* t.create
        const error = yield* Effect.flip(Database.transaction(t.insert(1, "refused"), { accessMode: "read only" }))
        expect(error).toMatchObject({ _tag: "DatabaseError", reason: "Query", code: "25006", retriable: false })
        // the next transaction is back to the defaults
        expect(yield* Database.transaction(setting("transaction_read_only"))).toBe("off")
      }))

    effect("transaction options whose keys are all undefined are the defaults", () =>
      Effect.gen(function*() {
        const isolation = setting("transaction_isolation")
        expect(yield* Database.transaction(isolation, {})).toBe("read committed")
        expect(yield* Database.transaction(isolation, { isolationLevel: undefined, accessMode: undefined })).toBe(
          "read committed"
        )
      }))

    scoped("listen delivers the payloads of NOTIFY on its channel", () =>
      Effect.gen(function*() {
        const received = yield* listening(channel("listen"))
        yield* Database.execute(sql`select pg_notify(${channel("listen")}, 'first')`)
        yield* Database.execute(sql`select pg_notify(${channel("other")}, 'elsewhere')`)
        yield* Database.execute(sql`select pg_notify(${channel("listen")}, 'second')`)
        expect(yield* next(received)).toEqual(Option.some("first"))
        expect(yield* next(received)).toEqual(Option.some("second"))
        expect(yield* arrivedWithin(received, 100)).toBe(0)
      }))

    scoped("notify outside a transaction is delivered at once", () =>
      Effect.gen(function*() {
        const received = yield* listening(channel("notify_outside"))
        yield* notify(channel("notify_outside"))
        expect(Option.isSome(yield* next(received))).toBe(true)
        yield* notify(channel("notify_outside"))
        expect(Option.isSome(yield* next(received))).toBe(true)
      }))

    scoped("notify inside a transaction is delivered once, at commit", () =>
      Effect.gen(function*() {
        const received = yield* listening(channel("notify_commit"))
        yield* Database.transaction(Effect.gen(function*() {
          yield* notify(channel("notify_commit"))
          yield* notify(channel("notify_commit"))
          yield* Database.transaction(notify(channel("notify_commit")))
          expect(yield* arrivedWithin(received, 150)).toBe(0)
        }))
        expect(Option.isSome(yield* next(received))).toBe(true)
        expect(yield* arrivedWithin(received, 150)).toBe(0)
        // and the next transaction notifies again
        yield* Database.transaction(notify(channel("notify_commit")))
        expect(Option.isSome(yield* next(received))).toBe(true)
      }))

    scoped("notify inside a transaction that rolls back is not delivered", () =>
      Effect.gen(function*() {
        const received = yield* listening(channel("notify_rollback"))
        const error = yield* Effect.flip(
          Database.transaction(Effect.zipRight(notify(channel("notify_rollback")), new Boom()))
        )
        expect(error).toBeInstanceOf(Boom)
        yield* Effect.flip(Database.transaction(Effect.gen(function*() {
          yield* Database.transaction(notify(channel("notify_rollback")))
          return yield* new Boom()
        })))
        expect(yield* arrivedWithin(received, 200)).toBe(0)
        // the listener was listening all along
        yield* notify(channel("notify_rollback"))
        expect(Option.isSome(yield* next(received))).toBe(true)
      }))

    scoped(
      "a notify undone with its savepoint does not swallow a later notify of the transaction",
      () =>
        Effect.gen(function*() {
          const received = yield* listening(channel("notify_savepoint"))
          yield* Database.transaction(Effect.gen(function*() {
            yield* Effect.flip(Database.transaction(Effect.zipRight(notify(channel("notify_savepoint")), new Boom())))
            yield* notify(channel("notify_savepoint"))
          }))
          expect(Option.isSome(yield* next(received))).toBe(true)
        })
    )

    effect(
      "a unique violation is a Constraint error naming the constraint (23505), not retriable",
      () =>
        Effect.gen(function*() {
          const t = fixture("unique_violation")
          yield* t.create
          yield* t.insert(1, "first")
          const error = yield* Effect.flip(t.insert(1, "again"))
          expect(error).toBeInstanceOf(DatabaseError)
          expect(error).toMatchObject({
            reason: "Constraint",
            code: "23505",
            constraint: "unique_violation_pkey",
            retriable: false
          })
          // inside a transaction: the transaction's error, and nothing of it committed
          const inTx = yield* Effect.flip(Database.transaction(Effect.zipRight(
            t.insert(2, "second"),
            t.insertRaw(1, "again")
          )))
          expect(inTx).toMatchObject({ reason: "Constraint", code: "23505", constraint: "unique_violation_pkey" })
          expect(yield* t.labels).toEqual(["first"])
        })
    )

    effect(
      "a constraint checked at commit fails the transaction with a Constraint error, and keeps nothing of it",
      () =>
        Effect.gen(function*() {
          yield* Database.execute(sql`drop table if exists deferred_unique`)
          yield* Database.execute(sql`
          create table deferred_unique (
            id integer constraint deferred_unique_id unique deferrable initially deferred
          )`)
          const error = yield* Effect.flip(Database.transaction(Effect.gen(function*() {
            yield* Database.execute(sql`insert into deferred_unique values (1), (1)`)
            yield* Database.execute(sql`insert into deferred_unique values (2)`)
            return "the body succeeds: the check is at commit"
          })))
          expect(error).toBeInstanceOf(DatabaseError)
          expect(error).toMatchObject({
            reason: "Constraint",
            code: "23505",
            constraint: "deferred_unique_id",
            retriable: false
          })
          expect(yield* Database.execute(sql`select count(*)::int as n from deferred_unique`)).toEqual([{ n: 0 }])
        })
    )

    effect("an unknown table is a Query error (42P01), not retriable", () =>
      Effect.gen(function*() {
        const raw = yield* Effect.flip(Database.execute(sql`select * from no_such_table`))
        expect(raw).toMatchObject({ _tag: "DatabaseError", reason: "Query", code: "42P01", retriable: false })
        expect(raw.message).toContain("no_such_table")
        const missing = pgTable("no_such_table", { id: integer("id") })
        const drizzle = yield* Effect.flip(Database.use((db) => db.select().from(missing)))
        expect(drizzle).toMatchObject({ _tag: "DatabaseError", reason: "Query", code: "42P01", retriable: false })
      }))

    if (concurrent) {
      effect(
        "two conflicting serializable transactions: one fails with a retriable Serialization error (40001)",
        () =>
          Effect.gen(function*() {
            const t = fixture("serialization")
            yield* t.create
            yield* t.insert(1, "n")
            const read = yield* Deferred.make<void>()
            const committed = yield* Deferred.make<void>()
            const second = yield* Effect.fork(Database.transaction(
              Effect.gen(function*() {
                yield* t.labels // the snapshot is taken
                yield* Deferred.succeed(read, undefined)
                yield* Deferred.await(committed)
                yield* t.update(1, "+second")
              }),
              { isolationLevel: "serializable" }
            ))
            yield* Deferred.await(read)
            yield* Database.transaction(t.update(1, "+first"), { isolationLevel: "serializable" })
            yield* Deferred.succeed(committed, undefined)
            const error = yield* Effect.flip(Fiber.join(second))
            expect(error).toBeInstanceOf(DatabaseError)
            expect(error).toMatchObject({ reason: "Serialization", code: "40001", retriable: true })
            expect(yield* t.labels).toEqual(["n+first"])
          })
      )

      effect(
        "a deadlock fails one of the two transactions with a retriable Deadlock error (40P01)",
        () =>
          Effect.gen(function*() {
            const t = fixture("deadlock")
            yield* t.create
            yield* t.insert(1, "a")
            yield* t.insert(2, "b")
            const firstLocked = yield* Deferred.make<void>()
            const secondLocked = yield* Deferred.make<void>()
            const one = yield* Effect.fork(Effect.either(Database.transaction(Effect.gen(function*() {
              yield* t.update(1, "1")
              yield* Deferred.succeed(firstLocked, undefined)
              yield* Deferred.await(secondLocked)
              yield* t.update(2, "1")
            }))))
            const two = yield* Effect.fork(Effect.either(Database.transaction(Effect.gen(function*() {
              yield* Deferred.await(firstLocked)
              yield* t.update(2, "2")
              yield* Deferred.succeed(secondLocked, undefined)
              yield* t.update(1, "2")
            }))))
            const results = [yield* Fiber.join(one), yield* Fiber.join(two)]
            const failures = results.filter(Either.isLeft).map((result) => result.left)
            expect(failures).toHaveLength(1)
            expect(failures[0]).toBeInstanceOf(DatabaseError)
            expect(failures[0]).toMatchObject({ reason: "Deadlock", code: "40P01", retriable: true })
            // the winner's writes, and only its
            const winner = Either.isRight(results[0]!) ? "1" : "2"
            expect(yield* t.labels).toEqual([`a${winner}`, `b${winner}`])
          })
      )
    }
  })
}
