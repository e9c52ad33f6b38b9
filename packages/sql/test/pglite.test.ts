import { describe, expect, it } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Database from "../src/Database.js"
import { suite } from "./databaseSuite.js"

suite("PGlite in memory", Database.layerPglite(), { concurrentTransactions: false })

/** A directory of its own, removed when the scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.tryPromise(() => fs.mkdtemp(path.join(os.tmpdir(), "deimos-sql-pglite-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

/** Runs `effect` on a PGlite at `dataDir`, closed at the end. */
const withPglite = (dataDir: string) => <A, E>(effect: Effect.Effect<A, E, Database.Database>) =>
  Effect.scoped(
    Effect.flatMap(Database.makePglite({ dataDir }), (db) => Effect.provideService(effect, Database.Database, db))
  )

describe("PGlite with a data directory", () => {
  it.live(
    "what was committed is there after closing and reopening, and what was rolled back is not",
    () =>
      Effect.gen(function*() {
        const dataDir = yield* tempDir
        yield* withPglite(dataDir)(Effect.gen(function*() {
          yield* Database.execute(sql`create table kept (id integer primary key, label text not null)`)
          yield* Database.execute(sql`insert into kept values (1, 'outside')`)
          yield* Database.transaction(Database.execute(sql`insert into kept values (2, 'committed')`))
          yield* Effect.flip(Database.transaction(
            Effect.zipRight(Database.execute(sql`insert into kept values (3, 'rolled back')`), Effect.fail("undo"))
          ))
        }))
        const rows = yield* withPglite(dataDir)(Database.execute(sql`select id, label from kept order by id`))
        expect(rows).toEqual([{ id: 1, label: "outside" }, { id: 2, label: "committed" }])
      }).pipe(Effect.scoped),
    30_000
  )
})
