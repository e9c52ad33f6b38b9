/**
 * A table from an Avro record schema, for a record consumer: the drizzle table definition (a TypeScript module) and
 * its SQL (`CREATE TABLE`, also as a `Migration`). Columns are the record's fields, named as the fields are (so the
 * record consumer's default attributes find them), typed from the Avro types, logical types included; the primary
 * key is the key config's field(s); `created_at` / `updated_at` are added.
 *
 * | Avro | Postgres | drizzle |
 * | --- | --- | --- |
 * | `string` | `text` | `text` |
 * | `string` / `uuid` | `uuid` | `uuid` |
 * | `enum` | `text` with a check of the symbols | `text({ enum })` |
 * | `int` | `integer` | `integer` |
 * | `int` / `date` | `date` | `date({ mode: "date" })` |
 * | `int` / `time-millis`, `long` / `time-micros` | `integer`, `bigint` | `integer`, `bigint` |
 * | `long` | `bigint` | `bigint({ mode: "number" })` |
 * | `long` / `timestamp-millis`, `timestamp-micros` | `timestamptz(3)`, `timestamptz(6)` | `timestamp({ withTimezone: true, precision })` |
 * | `long` / `local-timestamp-millis`, `local-timestamp-micros` | `timestamp(3)`, `timestamp(6)` | `timestamp({ precision })` |
 * | `float`, `double` | `real`, `double precision` | `real`, `doublePrecision` |
 * | `boolean` | `boolean` | `boolean` |
 * | `bytes`, `fixed` | `bytea` | a `bytea` custom type |
 * | `bytes` / `fixed` with `decimal` | `numeric(precision, scale)` | `numeric({ precision, scale })` |
 * | `record`, `array`, `map`, a union of several types | `jsonb` | `jsonb` |
 *
 * A union with `null` is a nullable column of the other branch; any other column is `not null`. A primitive default
 * becomes the column's default.
 *
 * @since 0.1.0
 */
import type { SchemaRef } from "@deimos/core"
import * as Data from "effect/Data"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Migration } from "./Migrations.js"

/**
 * @since 0.1.0
 */
export interface Options {
  /** The table's name. @default the record's name in snake_case */
  readonly table?: string | undefined
  /** The Postgres schema of the table. @default none (the search path's) */
  readonly schema?: string | undefined
  /** The fields of the primary key (the key config's field, or a key schema's fields). */
  readonly keyColumns: ReadonlyArray<string>
  /** Add `created_at` / `updated_at` columns. @default true */
  readonly timestamps?: boolean | undefined
  /** The exported name of the drizzle table. @default the table name in camelCase */
  readonly exportName?: string | undefined
}

/**
 * One column of a generated table.
 *
 * @since 0.1.0
 */
export interface Column {
  readonly name: string
  /** The Postgres type, e.g. `timestamptz(3)`. */
  readonly sqlType: string
  /** The drizzle column builder, e.g. `timestamp("sold_at", { withTimezone: true, precision: 3 })`. */
  readonly drizzle: string
  readonly nullable: boolean
  /** The SQL default, when the field has a primitive default. */
  readonly default?: string | undefined
  /** A check constraint (enum symbols), when there is one. */
  readonly check?: string | undefined
}

/**
 * @since 0.1.0
 */
export interface Generated {
  /** The record's full name. */
  readonly record: string
  readonly table: string
  readonly schema: string | undefined
  readonly columns: ReadonlyArray<Column>
  readonly keyColumns: ReadonlyArray<string>
  /** `CREATE TABLE IF NOT EXISTS …` (with `CREATE SCHEMA IF NOT EXISTS` first, when there is a schema). */
  readonly statements: ReadonlyArray<string>
  /** The migration creating the table (`create_<table>`), for `Migrations.run`. */
  readonly migration: Migration
  /** The drizzle module (TypeScript source). */
  readonly module: string
}

/**
 * An Avro schema the generator cannot make a table of.
 *
 * @since 0.1.0
 */
export class TableCodegenError extends Data.TaggedError("TableCodegenError")<{ readonly message: string }> {}

type Json = { readonly [key: string]: unknown }

const snake = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/[^A-Za-z0-9_]/g, "_").toLowerCase()
const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())
const quote = (name: string) => `"${name.replace(/"/g, "\"\"")}"`
const literal = (value: string) => `'${value.replace(/'/g, "''")}'`
const prop = (name: string) => /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name)

/** The named types a schema defines (records, enums, fixed), by full and short name. */
const namedTypes = (schema: unknown, namespace: string | undefined, out: Map<string, Json>) => {
  if (Array.isArray(schema)) {
    for (const branch of schema) namedTypes(branch, namespace, out)
    return
  }
  if (typeof schema !== "object" || schema === null) return
  const def = schema as Json
  const type = def.type
  if ((type === "record" || type === "enum" || type === "fixed") && typeof def.name === "string") {
    const ns = typeof def.namespace === "string" ? def.namespace : def.name.includes(".") ? undefined : namespace
    const full = def.name.includes(".") || ns === undefined ? def.name : `${ns}.${def.name}`
    out.set(full, def)
    out.set(full.slice(full.lastIndexOf(".") + 1), def)
    if (type === "record" && Array.isArray(def.fields)) {
      const inner = full.includes(".") ? full.slice(0, full.lastIndexOf(".")) : undefined
      for (const field of def.fields as ReadonlyArray<Json>) namedTypes(field.type, inner, out)
    }
    return
  }
  if (type === "array") namedTypes(def.items, namespace, out)
  else if (type === "map") namedTypes(def.values, namespace, out)
  else if (typeof type === "object") namedTypes(type, namespace, out)
}

const primitives = new Set(["null", "boolean", "int", "long", "float", "double", "bytes", "string"])

interface Mapped {
  readonly sqlType: string
  readonly drizzle: (column: string) => string
  readonly imports: ReadonlyArray<string>
  readonly check?: ((column: string) => string) | undefined
}

const jsonb: Mapped = { sqlType: "jsonb", drizzle: (c) => `jsonb(${JSON.stringify(c)})`, imports: ["jsonb"] }
const bytea: Mapped = { sqlType: "bytea", drizzle: (c) => `bytea(${JSON.stringify(c)})`, imports: ["customType"] }

const mapType = (type: unknown, named: ReadonlyMap<string, Json>, field: string): Mapped => {
  if (typeof type === "string") {
    if (!primitives.has(type)) {
      const def = named.get(type)
      if (def === undefined) {
        throw new TableCodegenError({ message: `Field "${field}" has type ${type}, which this schema does not define` })
      }
      return mapType(def, named, field)
    }
    return mapType({ type }, named, field)
  }
  if (Array.isArray(type)) return jsonb
  if (typeof type !== "object" || type === null) {
    throw new TableCodegenError({ message: `Field "${field}" has a type that is not Avro: ${JSON.stringify(type)}` })
  }
  const def = type as Json
  const logical = typeof def.logicalType === "string" ? def.logicalType : undefined
  if (typeof def.type === "object" && def.type !== null) return mapType(def.type, named, field)
  switch (def.type) {
    case "string":
      return logical === "uuid"
        ? { sqlType: "uuid", drizzle: (c) => `uuid(${JSON.stringify(c)})`, imports: ["uuid"] }
        : { sqlType: "text", drizzle: (c) => `text(${JSON.stringify(c)})`, imports: ["text"] }
    case "enum": {
      const symbols = (def.symbols as ReadonlyArray<string> | undefined) ?? []
      return {
        sqlType: "text",
        drizzle: (c) => `text(${JSON.stringify(c)}, { enum: [${symbols.map((v) => JSON.stringify(v)).join(", ")}] })`,
        imports: ["text"],
        check: (c) => `${quote(c)} in (${symbols.map(literal).join(", ")})`
      }
    }
    case "int":
      return logical === "date"
        ? { sqlType: "date", drizzle: (c) => `date(${JSON.stringify(c)}, { mode: "date" })`, imports: ["date"] }
        : { sqlType: "integer", drizzle: (c) => `integer(${JSON.stringify(c)})`, imports: ["integer"] }
    case "long": {
      const precision = logical?.endsWith("-millis") ? 3 : 6
      if (logical === "timestamp-millis" || logical === "timestamp-micros") {
        return {
          sqlType: `timestamptz(${precision})`,
          drizzle: (c) => `timestamp(${JSON.stringify(c)}, { withTimezone: true, precision: ${precision} })`,
          imports: ["timestamp"]
        }
      }
      if (logical === "local-timestamp-millis" || logical === "local-timestamp-micros") {
        return {
          sqlType: `timestamp(${precision})`,
          drizzle: (c) => `timestamp(${JSON.stringify(c)}, { precision: ${precision} })`,
          imports: ["timestamp"]
        }
      }
      return {
        sqlType: "bigint",
        drizzle: (c) => `bigint(${JSON.stringify(c)}, { mode: "number" })`,
        imports: ["bigint"]
      }
    }
    case "float":
      return { sqlType: "real", drizzle: (c) => `real(${JSON.stringify(c)})`, imports: ["real"] }
    case "double":
      return {
        sqlType: "double precision",
        drizzle: (c) => `doublePrecision(${JSON.stringify(c)})`,
        imports: ["doublePrecision"]
      }
    case "boolean":
      return { sqlType: "boolean", drizzle: (c) => `boolean(${JSON.stringify(c)})`, imports: ["boolean"] }
    case "bytes":
    case "fixed": {
      if (logical === "decimal" && typeof def.precision === "number") {
        const scale = typeof def.scale === "number" ? def.scale : 0
        return {
          sqlType: `numeric(${def.precision}, ${scale})`,
          drizzle: (c) => `numeric(${JSON.stringify(c)}, { precision: ${def.precision}, scale: ${scale} })`,
          imports: ["numeric"]
        }
      }
      return bytea
    }
    case "record":
    case "array":
    case "map":
      return jsonb
    case "null":
      throw new TableCodegenError({ message: `Field "${field}" is always null: it makes no column` })
    default:
      if (typeof def.type === "string" && named.has(def.type)) return mapType(named.get(def.type), named, field)
      throw new TableCodegenError({
        message: `Field "${field}" has type ${String(def.type)}, which this schema does not define`
      })
  }
}

/** A field's type without its null branch, and whether it had one. */
const nonNull = (type: unknown): { readonly type: unknown; readonly nullable: boolean } => {
  if (!Array.isArray(type)) return { type, nullable: type === "null" }
  const branches = type.filter((b) => b !== "null")
  const nullable = branches.length < type.length
  return { type: branches.length === 1 ? branches[0] : branches, nullable }
}

const sqlDefault = (value: unknown, sqlType: string): string | undefined => {
  if (value === null || value === undefined) return undefined
  if (typeof value === "boolean") return value ? "true" : "false"
  if (typeof value === "number" && Number.isFinite(value)) {
    return sqlType.startsWith("timestamp") || sqlType === "date" ? undefined : String(value)
  }
  if (typeof value === "string" && (sqlType === "text" || sqlType === "uuid")) return literal(value)
  return undefined
}

const drizzleDefault = (value: unknown, sqlType: string): string | undefined =>
  sqlDefault(value, sqlType) === undefined ? undefined : `.default(${JSON.stringify(value)})`

/**
 * The table of an Avro record schema (its JSON, as in an `.avsc` file or a schema handle's `avro`). Throws
 * `TableCodegenError` for a schema that is not a record, a key field it lacks, a type it does not define.
 *
 * @since 0.1.0
 */
export const generate = (avro: SchemaRef.AvroSchema, options: Options): Generated => {
  if (typeof avro !== "object" || avro === null || Array.isArray(avro) || (avro as Json).type !== "record") {
    throw new TableCodegenError({ message: "A table is made from a record schema; this is not one" })
  }
  const record = avro as Json
  const named = new Map<string, Json>()
  namedTypes(record, undefined, named)
  const name = String(record.name)
  const full = typeof record.namespace === "string" && !name.includes(".") ? `${record.namespace}.${name}` : name
  const table = options.table ?? snake(name.slice(name.lastIndexOf(".") + 1))
  const fields = (record.fields as ReadonlyArray<Json> | undefined) ?? []
  if (options.keyColumns.length === 0) {
    throw new TableCodegenError({
      message: `The table of ${full} needs key columns (the key config's field): give keyColumns`
    })
  }
  for (const key of options.keyColumns) {
    if (!fields.some((f) => f.name === key)) {
      throw new TableCodegenError({ message: `Key column "${key}" is not a field of ${full}` })
    }
  }
  const single = options.keyColumns.length === 1 ? options.keyColumns[0] : undefined
  const imports = new Set<string>(["pgTable"])
  const columns: Array<Column> = []
  const lines: Array<string> = []
  for (const field of fields) {
    const fieldName = String(field.name)
    const { nullable: optional, type } = nonNull(field.type)
    const mapped = mapType(type, named, fieldName)
    for (const i of mapped.imports) imports.add(i)
    const isKey = options.keyColumns.includes(fieldName)
    if (isKey && optional) throw new TableCodegenError({ message: `Key column "${fieldName}" of ${full} may be null` })
    const nullable = optional && !isKey
    const sqlDef = sqlDefault(field.default, mapped.sqlType)
    columns.push({
      name: fieldName,
      sqlType: mapped.sqlType,
      drizzle: mapped.drizzle(fieldName),
      nullable,
      default: sqlDef,
      check: mapped.check?.(fieldName)
    })
    lines.push(
      `  ${prop(fieldName)}: ${mapped.drizzle(fieldName)}${
        single === fieldName ? ".primaryKey()" : nullable ? "" : ".notNull()"
      }${drizzleDefault(field.default, mapped.sqlType) ?? ""},`
    )
  }
  if (options.timestamps ?? true) {
    imports.add("timestamp")
    for (const ts of ["created_at", "updated_at"]) {
      if (fields.some((f) => f.name === ts)) continue
      columns.push({ name: ts, sqlType: "timestamptz", drizzle: "", nullable: false, default: "now()" })
      lines.push(`  ${ts}: timestamp(${JSON.stringify(ts)}, { withTimezone: true }).notNull().defaultNow(),`)
    }
  }
  const qualified = options.schema === undefined ? quote(table) : `${quote(options.schema)}.${quote(table)}`
  const definitions = columns.map((c) =>
    `  ${quote(c.name)} ${c.sqlType}${c.nullable ? "" : " not null"}${
      c.default === undefined ? "" : ` default ${c.default}`
    }${single === c.name ? " primary key" : ""}${c.check === undefined ? "" : ` check (${c.check})`}`
  )
  if (single === undefined) definitions.push(`  primary key (${options.keyColumns.map(quote).join(", ")})`)
  const create = `create table if not exists ${qualified} (\n${definitions.join(",\n")}\n)`
  const statements = options.schema === undefined
    ? [create]
    : [`create schema if not exists ${quote(options.schema)}`, create]

  const exportName = options.exportName ?? camel(table)
  if (single === undefined) imports.add("primaryKey")
  if (options.schema !== undefined) {
    imports.delete("pgTable")
    imports.add("pgSchema")
  }
  const header = [
    `// Generated by deimos-table from ${full}; do not edit.`,
    `import { ${[...imports].sort().join(", ")} } from "drizzle-orm/pg-core"`,
    ""
  ]
  if (imports.has("customType")) {
    header.push(
      "const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({ dataType: () => \"bytea\" })",
      ""
    )
  }
  if (options.schema !== undefined) header.push(`const schema = pgSchema(${JSON.stringify(options.schema)})`, "")
  const constructor = options.schema === undefined ? "pgTable" : "schema.table"
  const extra = single === undefined
    ? `, (t) => [primaryKey({ columns: [${
      options.keyColumns.map((k) => prop(k) === k ? `t.${k}` : `t[${JSON.stringify(k)}]`).join(", ")
    }] })]`
    : ""
  const module = [
    ...header,
    `/** The table of ${full}, keyed by ${options.keyColumns.join(", ")}. */`,
    `export const ${exportName} = ${constructor}(${JSON.stringify(table)}, {`,
    ...lines.map((l, i) => i === lines.length - 1 ? l.slice(0, -1) : l),
    `}${extra})`,
    ""
  ].join("\n")
  return {
    record: full,
    table,
    schema: options.schema,
    columns,
    keyColumns: options.keyColumns,
    statements,
    migration: { name: `create_${options.schema === undefined ? "" : `${options.schema}_`}${table}`, statements },
    module
  }
}

/**
 * Generates from an `.avsc` file and writes `<out>/<table>.ts` (the drizzle module) and `<out>/<table>.sql`; answers
 * what it generated.
 *
 * @since 0.1.0
 */
export const generateFile = (file: string, out: string, options: Options): Generated => {
  let avro: SchemaRef.AvroSchema
  try {
    avro = JSON.parse(fs.readFileSync(file, "utf8")) as SchemaRef.AvroSchema
  } catch (error) {
    throw new TableCodegenError({
      message: `Cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`
    })
  }
  const generated = generate(avro, options)
  fs.mkdirSync(out, { recursive: true })
  fs.writeFileSync(path.join(out, `${generated.table}.ts`), generated.module)
  fs.writeFileSync(path.join(out, `${generated.table}.sql`), generated.statements.map((s) => `${s};\n`).join("\n"))
  return generated
}
