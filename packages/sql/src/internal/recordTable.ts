/**
 * What a record consumer knows of its drizzle table: the columns by property name, the key columns, the timestamp
 * columns, and the checks of a row against the columns' types (so that a bad value is refused naming its column,
 * before Postgres refuses the whole statement with a message that does not name it).
 */
import { and, eq, getTableColumns, inArray, or, type SQL, sql } from "drizzle-orm"
import { getTableConfig, type PgColumn, type PgTable } from "drizzle-orm/pg-core"

/** A row as drizzle takes it: values by the table's property names. */
export type Row = Readonly<Record<string, unknown>>

export interface TableInfo {
  readonly table: PgTable
  /** `schema.table`, for messages. */
  readonly name: string
  /** Columns by property name. */
  readonly columns: ReadonlyMap<string, PgColumn>
  /** Property names by SQL column name. */
  readonly bySqlName: ReadonlyMap<string, string>
  /** The key columns (property names), in order. */
  readonly keyColumns: ReadonlyArray<string>
  readonly keyTargets: ReadonlyArray<PgColumn>
  /** The `created_at` / `updated_at` columns (property names), when the table has them. */
  readonly createdAt: string | undefined
  readonly updatedAt: string | undefined
  /** Columns that need a value on insert: not null, no default, not generated, not a timestamp column. */
  readonly required: ReadonlyArray<string>
}

/** A property name of the table from a property or SQL column name. */
export const columnKey = (info: Pick<TableInfo, "columns" | "bySqlName">, name: string): string | undefined =>
  info.columns.has(name) ? name : info.bySqlName.get(name)

const timestampColumn = (info: Pick<TableInfo, "columns" | "bySqlName">, sqlName: string, camel: string) =>
  info.bySqlName.get(sqlName) ?? (info.columns.has(camel) ? camel : undefined)

/** Reads a table; `keyColumns` (property or SQL names) default to its primary key. Throws a message on misuse. */
export const tableInfo = (
  table: PgTable,
  keyColumns: ReadonlyArray<string> | undefined,
  keyless = false
): TableInfo => {
  const columns = new Map(Object.entries(getTableColumns(table) as Record<string, PgColumn>))
  const bySqlName = new Map([...columns].map(([key, column]) => [column.name, key] as const))
  const config = getTableConfig(table)
  const name = config.schema === undefined ? config.name : `${config.schema}.${config.name}`
  const base = { columns, bySqlName }
  let keys: Array<string>
  if (keyColumns !== undefined && keyColumns.length > 0) {
    keys = keyColumns.map((k) => {
      const key = columnKey(base, k)
      if (key === undefined) throw new Error(`Table ${name} has no column "${k}" (named in keyColumns)`)
      return key
    })
  } else {
    const single = [...columns].filter(([, column]) => column.primary).map(([key]) => key)
    const composite = config.primaryKeys[0]?.columns.map((column) => bySqlName.get(column.name)!) ?? []
    keys = single.length > 0 ? single : composite
    if (keys.length === 0 && !keyless) {
      throw new Error(`Table ${name} has no primary key: give keyColumns (the columns of a unique constraint)`)
    }
  }
  const createdAt = timestampColumn(base, "created_at", "createdAt")
  const updatedAt = timestampColumn(base, "updated_at", "updatedAt")
  const required = [...columns].filter(([key, column]) =>
    column.notNull && !column.hasDefault && column.generated === undefined &&
    column.generatedIdentity === undefined && key !== createdAt && key !== updatedAt
  ).map(([key]) => key)
  return {
    table,
    name,
    columns,
    bySqlName,
    keyColumns: keys,
    keyTargets: keys.map((k) => columns.get(k)!),
    createdAt,
    updatedAt,
    required
  }
}

const integerTypes = new Set([
  "PgInteger",
  "PgSmallInt",
  "PgSerial",
  "PgSmallSerial",
  "PgBigInt53",
  "PgBigSerial53"
])
const ranges: Readonly<Record<string, readonly [number, number]>> = {
  PgSmallInt: [-32768, 32767],
  PgSmallSerial: [-32768, 32767],
  PgInteger: [-2147483648, 2147483647],
  PgSerial: [-2147483648, 2147483647]
}

const show = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (typeof value === "bigint") return `${value}n`
  if (value instanceof Date) return `a Date (${Number.isNaN(value.getTime()) ? "invalid" : value.toISOString()})`
  if (value instanceof Uint8Array) return "bytes"
  if (Array.isArray(value)) return "an array"
  if (typeof value === "object" && value !== null) return "an object"
  return String(value)
}

/** The SQL type of a column, for messages. */
export const sqlTypeOf = (column: PgColumn): string => {
  try {
    return column.getSQLType()
  } catch {
    return column.columnType
  }
}

/** What is wrong with a value for a column, or undefined when it fits (`null` is checked against not-null). */
export const problemOf = (column: PgColumn, value: unknown): string | undefined => {
  if (value === null) return column.notNull ? "null in a not-null column" : undefined
  const type = column.columnType
  switch (column.dataType) {
    case "string": {
      if (type === "PgNumeric") {
        return (typeof value === "number" && Number.isFinite(value)) ||
            (typeof value === "string" && value.trim() !== "" && !Number.isNaN(Number(value))) ||
            typeof value === "bigint"
          ? undefined
          : `${show(value)}, which is not a number`
      }
      if (typeof value !== "string") return `${show(value)}, which is not a string`
      if (column.enumValues !== undefined && column.enumValues.length > 0 && !column.enumValues.includes(value)) {
        return `${show(value)}, which is not one of ${column.enumValues.map((v) => JSON.stringify(v)).join(", ")}`
      }
      const length = (column as { readonly length?: unknown }).length
      if (typeof length === "number" && value.length > length) {
        return `a string of ${value.length} characters, longer than ${length}`
      }
      return undefined
    }
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) return `${show(value)}, which is not a number`
      if (integerTypes.has(type) && !Number.isInteger(value)) return `${show(value)}, which is not an integer`
      if (ranges[type] !== undefined && (value < ranges[type][0] || value > ranges[type][1])) {
        return `${show(value)}, out of its range`
      }
      if (type.startsWith("PgBig") && !Number.isSafeInteger(value)) return `${show(value)}, not a safe integer`
      return undefined
    case "bigint":
      return typeof value === "bigint" || (typeof value === "number" && Number.isSafeInteger(value))
        ? undefined
        : `${show(value)}, which is not an integer`
    case "boolean":
      return typeof value === "boolean" ? undefined : `${show(value)}, which is not a boolean`
    case "date":
      return value instanceof Date
        ? Number.isNaN(value.getTime()) ? "an invalid Date" : undefined
        : `${show(value)}, which is not a Date`
    case "array":
      return Array.isArray(value) ? undefined : `${show(value)}, which is not an array`
    case "buffer":
      return value instanceof Uint8Array ? undefined : `${show(value)}, which is not bytes`
    default:
      return undefined
  }
}

/** A row's problem: a property that is not a column, a value of the wrong type, a required column without one. */
export interface RowProblem {
  readonly column: string
  readonly message: string
}

export const checkRow = (info: TableInfo, row: Row, filled?: ReadonlyArray<string>): RowProblem | undefined => {
  for (const key of Object.keys(row)) {
    const value = row[key]
    if (value === undefined) continue
    const column = info.columns.get(key)
    if (column === undefined) {
      return {
        column: key,
        message: `the attributes name "${key}", which is not a column of ${info.name}`
      }
    }
    if (key === info.createdAt || key === info.updatedAt) continue
    const problem = problemOf(column, value)
    if (problem !== undefined) {
      return {
        column: key,
        message: `column "${column.name}" (${sqlTypeOf(column)}) of ${info.name} got ${problem}`
      }
    }
  }
  for (const key of info.required) {
    if (row[key] === undefined && filled?.includes(key) !== true) {
      const column = info.columns.get(key)!
      return {
        column: key,
        message: `column "${column.name}" (${
          sqlTypeOf(column)
        }, not null, no default) of ${info.name} has no value: neither the payload nor recordAttributes gives one`
      }
    }
  }
  return undefined
}

const identityPart = (value: unknown): string =>
  value instanceof Date
    ? `d${value.getTime()}`
    : typeof value === "bigint"
    ? `n${value}`
    : typeof value === "string"
    ? `s${value}`
    : `j${JSON.stringify(value)}`

/** The identity of a row by its key columns, or the key column it has no value for. */
export const identityOf = (
  info: TableInfo,
  row: Row
): { readonly identity: string; readonly key: Row } | { readonly missing: string } => {
  if (info.keyColumns.length === 1) {
    const k = info.keyColumns[0]
    const value = row[k]
    if (value === undefined || value === null) return { missing: k }
    return { identity: identityPart(value), key: { [k]: value } }
  }
  const key: Record<string, unknown> = {}
  const parts: Array<string> = []
  for (const k of info.keyColumns) {
    const value = row[k]
    if (value === undefined || value === null) return { missing: k }
    key[k] = value
    parts.push(identityPart(value))
  }
  return { identity: parts.join("\u0000"), key }
}

/** The condition selecting the rows of these keys. */
export const keysCondition = (info: TableInfo, keys: ReadonlyArray<Row>): SQL => {
  if (info.keyColumns.length === 1) {
    const k = info.keyColumns[0]
    return inArray(info.keyTargets[0], keys.map((key) => key[k]))
  }
  return or(...keys.map((key) => and(...info.keyColumns.map((k, i) => eq(info.keyTargets[i], key[k])))))!
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, "\"\"")}"`

/** The `SET` of an upsert: every column the rows give except the key and `created_at`; `updated_at` always. */
export const conflictSet = (info: TableInfo, rows: ReadonlyArray<Row>): Record<string, SQL> => {
  const set: Record<string, SQL> = {}
  const keys = new Set(info.keyColumns)
  for (const row of rows) {
    for (const k of Object.keys(row)) {
      if (set[k] !== undefined || keys.has(k) || k === info.createdAt || row[k] === undefined) continue
      const column = info.columns.get(k)
      if (column !== undefined) set[k] = sql.raw(`excluded.${quoteIdent(column.name)}`)
    }
  }
  if (info.updatedAt !== undefined) {
    set[info.updatedAt] = sql.raw(`excluded.${quoteIdent(info.columns.get(info.updatedAt)!.name)}`)
  }
  return set
}

const now = sql`now()`

/** The row with `created_at` / `updated_at` set to the transaction's time, unless it gives them. */
export const withTimestamps = (info: TableInfo, row: Row): Row => {
  if (info.createdAt === undefined && info.updatedAt === undefined) return row
  const out: Record<string, unknown> = { ...row }
  if (info.createdAt !== undefined && out[info.createdAt] === undefined) out[info.createdAt] = now
  if (info.updatedAt !== undefined && out[info.updatedAt] === undefined) out[info.updatedAt] = now
  return out
}

/** A value as an element of a Postgres array literal (its text form, quoted), or NULL. */
const arrayElement = (value: unknown): string => {
  if (value === null || value === undefined) return "NULL"
  // numbers and booleans need no quotes
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value)
  let text: string
  if (typeof value === "string") text = value
  else if (value instanceof Date) text = value.toISOString()
  else if (value instanceof Uint8Array) {
    text = `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex")}`
  } else if (typeof value === "object") text = JSON.stringify(value)
  else text = String(value)
  return text.includes("\\") || text.includes("\"")
    ? `"${text.replace(/\\/g, "\\\\").replace(/"/g, "\\\"")}"`
    : `"${text}"`
}

/** Columns whose values go through `unnest` of a text array literal cast to the column's array type. */
const unnestable = (column: PgColumn): boolean =>
  column.columnType !== "PgEnumColumn" && column.columnType !== "PgEnumObjectColumn" &&
  column.columnType !== "PgArray" &&
  column.dataType !== "array"

const qualified = (info: TableInfo) => {
  const config = getTableConfig(info.table)
  return config.schema === undefined
    ? quoteIdent(config.name)
    : `${quoteIdent(config.schema)}.${quoteIdent(config.name)}`
}

/**
 * The upsert of rows as one `INSERT … SELECT … FROM unnest(…) ON CONFLICT …`: one parameter per column (a Postgres
 * array literal) instead of one per value, which keeps building and parsing the statement cheap for big batches.
 * `undefined` when the rows do not suit it (a column some rows give and others do not, which would take its default
 * in a multi-row VALUES; enum and array columns): the caller then uses drizzle's builder.
 */
export const unnestUpsert = (info: TableInfo, rows: ReadonlyArray<Row>): SQL | undefined => {
  const keys: Array<string> = []
  for (const k of Object.keys(rows[0])) {
    if (rows[0][k] === undefined) continue
    const column = info.columns.get(k)
    if (column === undefined || !unnestable(column)) return undefined
    keys.push(k)
  }
  const elements: Array<Array<string>> = keys.map(() => [])
  for (const row of rows) {
    let n = 0
    for (const k of Object.keys(row)) if (row[k] !== undefined) n++
    if (n !== keys.length) return undefined
    for (let i = 0; i < keys.length; i++) {
      const value = row[keys[i]]
      if (value === undefined) return undefined
      const column = info.columns.get(keys[i])!
      elements[i].push(arrayElement(value === null ? null : column.mapToDriverValue(value)))
    }
  }
  const names = keys.map((k) => quoteIdent(info.columns.get(k)!.name))
  const stamps = [info.createdAt, info.updatedAt].filter((k): k is string => k !== undefined && !keys.includes(k))
  const into = [...names, ...stamps.map((k) => quoteIdent(info.columns.get(k)!.name))]
  const chunks: Array<SQL> = [
    sql.raw(
      `insert into ${qualified(info)} (${into.join(", ")}) select ${
        [
          ...names.map((_, i) => `u.c${i}`),
          ...stamps.map(() => "now()")
        ].join(", ")
      } from unnest(`
    )
  ]
  keys.forEach((k, i) => {
    if (i > 0) chunks.push(sql.raw(", "))
    chunks.push(sql`${`{${elements[i].join(",")}}`}`)
    chunks.push(sql.raw(`::${sqlTypeOf(info.columns.get(k)!)}[]`))
  })
  const set = new Set(info.keyColumns)
  const updates = keys.filter((k) => !set.has(k) && k !== info.createdAt).map((k) => info.columns.get(k)!.name)
  if (info.updatedAt !== undefined && !keys.includes(info.updatedAt)) {
    updates.push(info.columns.get(info.updatedAt)!.name)
  }
  const target = info.keyTargets.map((c) => quoteIdent(c.name)).join(", ")
  chunks.push(sql.raw(`) as u(${keys.map((_, i) => `c${i}`).join(", ")}) on conflict (${target}) ${
    updates.length === 0
      ? "do nothing"
      : `do update set ${updates.map((name) => `${quoteIdent(name)} = excluded.${quoteIdent(name)}`).join(", ")}`
  }`))
  return sql.join(chunks)
}
