// Tables from Avro schemas: the generated drizzle module and SQL (checked against the committed examples in
// generated/, which the test build typechecks), the SQL applied to Postgres, a record consumer writing into a
// generated table, schemas that cannot make a table, the bin.
import { AvroBackend } from "@deimos/avro"
import { SchemaRef } from "@deimos/core"
import { Database, Migrations, RecordConsumer, TableCodegen } from "@deimos/sql"
import { TestConsume, TestLayer } from "@deimos/test"
import { describe, expect, it, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { readings } from "./generated/readings.js"
import { DatabaseIn, schemaFor } from "./recordFixtures.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const avsc = (name: string) =>
  JSON.parse(fs.readFileSync(path.join(here, "record-schemas", `${name}.avsc`), "utf8")) as SchemaRef.AvroSchema
const shipmentOptions = { keyColumns: ["shipment_id", "region"] }
const readingOptions = { keyColumns: ["sensor"], table: "readings" }
const schema = schemaFor("record_codegen")

describe("TableCodegen", () => {
  it("writes the committed examples: the drizzle module and the SQL", () => {
    for (
      const [name, options, file] of [["Shipment", shipmentOptions, "shipment"], [
        "Reading",
        readingOptions,
        "readings"
      ]] as const
    ) {
      const generated = TableCodegen.generate(avsc(name), options)
      expect(generated.module).toBe(fs.readFileSync(path.join(here, "generated", `${file}.ts`), "utf8"))
      expect(generated.statements.map((s) => `${s};\n`).join("\n")).toBe(
        fs.readFileSync(path.join(here, "generated", `${file}.sql`), "utf8")
      )
    }
  })

  it("refuses schemas that make no table, naming the problem", () => {
    const refused = (avro: SchemaRef.AvroSchema, keyColumns: ReadonlyArray<string>) => {
      try {
        TableCodegen.generate(avro, { keyColumns })
      } catch (error) {
        expect(error).toBeInstanceOf(TableCodegen.TableCodegenError)
        return (error as Error).message
      }
      throw new Error("expected the schema to be refused")
    }
    const record = (fields: ReadonlyArray<unknown>) => ({ type: "record", name: "R", namespace: "n", fields })
    expect(refused("string", ["id"])).toContain("not one")
    expect(refused(record([{ name: "id", type: "string" }]), [])).toContain("needs key columns")
    expect(refused(record([{ name: "id", type: "string" }]), ["nope"])).toBe(`Key column "nope" is not a field of n.R`)
    expect(refused(record([{ name: "id", type: ["null", "string"] }]), ["id"])).toBe(
      `Key column "id" of n.R may be null`
    )
    expect(refused(record([{ name: "id", type: "string" }, { name: "x", type: "other.Thing" }]), ["id"])).toBe(
      `Field "x" has type other.Thing, which this schema does not define`
    )
  })

  it("the bin writes the module and the SQL", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "deimos-table-"))
    const result = spawnSync(process.execPath, [
      "--import",
      "tsx",
      path.join(here, "../src/bin/table-codegen.ts"),
      "--schema",
      path.join(here, "record-schemas/Reading.avsc"),
      "--out",
      out,
      "--key",
      "sensor",
      "--table",
      "readings"
    ], { encoding: "utf8", cwd: path.join(here, "../../..") })
    expect(result.stderr).toBe("")
    expect(result.stdout).toContain(`Generated readings.ts and readings.sql in ${out}`)
    expect(fs.readFileSync(path.join(out, "readings.ts"), "utf8")).toBe(
      TableCodegen.generate(avsc("Reading"), readingOptions).module
    )
    const usage = spawnSync(process.execPath, ["--import", "tsx", path.join(here, "../src/bin/table-codegen.ts")], {
      encoding: "utf8",
      cwd: path.join(here, "../../..")
    })
    expect(usage.status).toBe(2)
    expect(usage.stderr).toContain("Usage: deimos-table")
    fs.rmSync(out, { recursive: true, force: true })
  })

  layer(
    Layer.mergeAll(
      DatabaseIn(schema, { searchPath: schema }),
      TestLayer.make({ schemaBackend: AvroBackend.layerValidation() })
    ),
    { timeout: 60_000, excludeTestServices: true }
  )((it) => {
    it.effect("the SQL makes the table in Postgres with the mapped types, key and checks", () =>
      Effect.gen(function*() {
        const shipment = TableCodegen.generate(avsc("Shipment"), { ...shipmentOptions, schema })
        yield* Migrations.run([shipment.migration], { table: `${schema}.deimos_migrations` })
        const columns = yield* Database.execute(
          sql`select column_name, data_type, is_nullable from information_schema.columns where table_schema = ${schema} and table_name = 'shipment'`
        )
        const types = Object.fromEntries(
          columns.map((c) => [c.column_name, `${c.data_type}${c.is_nullable === "YES" ? "?" : ""}`])
        )
        expect(types).toEqual({
          shipment_id: "uuid",
          region: "text",
          status: "text",
          weight_grams: "integer",
          count: "bigint",
          price: "numeric",
          ratio: "real",
          score: "double precision?",
          fragile: "boolean",
          shipped_on: "date",
          sent_at: "timestamp with time zone?",
          scanned_at: "timestamp with time zone",
          label: "bytea",
          address: "jsonb",
          tags: "jsonb",
          attrs: "jsonb",
          reference: "jsonb",
          previous_status: "text?",
          note: "text",
          created_at: "timestamp with time zone",
          updated_at: "timestamp with time zone"
        })
        const key = yield* Database.execute(sql`
          select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
          where i.indrelid = ${`"${schema}".shipment`}::regclass and i.indisprimary order by a.attname`)
        expect(key.map((k) => k.attname)).toEqual(["region", "shipment_id"])
        const badStatus = yield* Effect.exit(Database.execute(sql.raw(`insert into "${schema}".shipment
          (shipment_id, region, status, weight_grams, price, ratio, shipped_on, scanned_at, label, address, tags, attrs, reference)
          values (gen_random_uuid(), 'eu', 'GONE', 1, 1, 1, now(), now(), '', '{}', '[]', '{}', '1')`)))
        expect(Exit.isFailure(badStatus) && JSON.stringify(badStatus.cause)).toContain("shipment_status_check")
      }))

    it.effect("a record consumer writes Avro messages into a generated table", () =>
      Effect.gen(function*() {
        const generated = TableCodegen.generate(avsc("Reading"), readingOptions)
        yield* Migrations.run([generated.migration], { table: `${schema}.deimos_migrations` })
        const Reading = SchemaRef.make<Record<string, unknown>>({
          name: "Reading",
          namespace: "test.ship",
          avro: avsc("Reading")
        })
        const consumer = RecordConsumer.make({
          topic: "readings",
          groupId: "g",
          schema: Reading,
          keyConfig: { field: "sensor" },
          table: readings,
          delivery: "inlineBatch"
        })
        const takenOn = Date.UTC(2025, 2, 4) / 86_400_000
        const takenAt = Date.UTC(2025, 2, 4, 5, 6, 7, 890) * 1000 + 123
        // the batch's rows go in one INSERT (not the row-by-row fallback): counted by a statement trigger
        yield* Database.execute(sql.raw(`create table "${schema}".reading_inserts (at timestamptz default now());
          create function "${schema}".count_reading_insert() returns trigger language plpgsql as $$
            begin insert into "${schema}".reading_inserts default values; return null; end $$;
          create trigger count_inserts after insert on "${schema}".readings
            for each statement execute function "${schema}".count_reading_insert()`))
        const tricky = "la\"b\\c, {x} NULL é"
        yield* TestConsume.testConsumeBatch(consumer, [
          { sensor: "s1", kind: "TEMP", value: 20, samples: 1, taken_on: takenOn, taken_at: takenAt, location: null },
          {
            sensor: "s1",
            kind: "HUMIDITY",
            value: 0.5,
            samples: 2 ** 40,
            taken_on: takenOn,
            taken_at: takenAt,
            location: { room: tricky }
          },
          {
            sensor: tricky,
            kind: "TEMP",
            value: -1e-9,
            samples: 0,
            taken_on: 0,
            taken_at: 0,
            location: null,
            ok: false
          }
        ])
        const rows = yield* Database.use((db) => db.select().from(readings).orderBy(readings.sensor))
        expect(rows.map((r) => r.sensor)).toEqual([tricky, "s1"])
        const [other, row] = rows
        expect(row).toMatchObject({
          sensor: "s1",
          kind: "HUMIDITY",
          value: 0.5,
          samples: 2 ** 40,
          location: { room: tricky },
          ok: true
        })
        expect(row.taken_on.getTime()).toBe(Date.UTC(2025, 2, 4))
        expect(row.taken_at.getTime()).toBe(Date.UTC(2025, 2, 4, 5, 6, 7, 890))
        expect(other).toMatchObject({
          sensor: tricky,
          kind: "TEMP",
          value: -1e-9,
          samples: 0,
          location: null,
          ok: false
        })
        expect(other.taken_on.getTime()).toBe(0)
        expect(other.taken_at.getTime()).toBe(0)
        const inserts = yield* Database.execute(sql.raw(`select count(*)::int as n from "${schema}".reading_inserts`))
        expect(inserts[0].n).toBe(1)
      }))
  })
})
