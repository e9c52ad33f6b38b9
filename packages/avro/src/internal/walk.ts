/**
 * Walks Avro schema JSON alongside values: coercion (REFERENCE §1), field descriptions and SQL types.
 */
import { SchemaBackend } from "@deimos/core"
import { type Named, resolve } from "./schemas.js"

type Def = { readonly [key: string]: unknown }

const numeric = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/
const integer = /^\s*[-+]?\d+\s*$/

const timeUnit = (logicalType: unknown): number | undefined =>
  logicalType === "timestamp-millis" || logicalType === "local-timestamp-millis"
    ? 1
    : logicalType === "timestamp-micros" || logicalType === "local-timestamp-micros"
    ? 1000
    : undefined

/** A date as the integer a field wants: epoch millis or micros for timestamps, days for `date`. */
const fromDate = (d: Date, logicalType: unknown): number =>
  logicalType === "date" ? Math.floor(d.getTime() / 86_400_000) : d.getTime() * (timeUnit(logicalType) ?? 1)

const coerceInteger = (value: unknown, logicalType: unknown): unknown => {
  if (typeof value === "number") return value
  if (typeof value === "bigint") return Number(value)
  if (value instanceof Date) return fromDate(value, logicalType)
  if (typeof value === "string") {
    if (integer.test(value)) return Number(value.trim())
    const unit = timeUnit(logicalType)
    if (unit !== undefined || logicalType === "date") {
      const parsed = Date.parse(value)
      if (!Number.isNaN(parsed)) return fromDate(new Date(parsed), logicalType)
    }
  }
  return value
}

/**
 * Coerces a value towards an Avro schema: int/long from integer strings and dates (keeping millis or micros as the
 * logical type says), float/double from numeric strings, string from anything with a string form, boolean from
 * truthiness; through unions with null, records, arrays and maps. What cannot be coerced is left for validation.
 */
export const coerce = (
  schema: unknown,
  value: unknown,
  named: ReadonlyMap<string, Named>,
  namespace: string | undefined
): unknown => {
  const { json, namespace: ns } = resolve(schema, namespace, named)
  if (Array.isArray(json)) {
    if (value === null || value === undefined) return value
    const branches = json.filter((b) => b !== "null")
    return branches.length === 1 ? coerce(branches[0], value, named, ns) : value
  }
  const def: Def = typeof json === "string" ? { type: json } : (json as Def)
  const type = typeof def.type === "object" ? null : def.type
  if (type === null) return coerce(def.type, value, named, ns)
  if (value === null || value === undefined) return value
  switch (type) {
    case "int":
    case "long":
      return coerceInteger(value, def.logicalType)
    case "float":
    case "double":
      if (typeof value === "string" && numeric.test(value)) return Number(value)
      if (typeof value === "bigint") return Number(value)
      return value
    case "string":
      if (typeof value === "string") return value
      if (value instanceof Date) return value.toISOString()
      if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value)
      return value
    case "boolean":
      return typeof value === "boolean" ? value : Boolean(value)
    case "record":
    case "error": {
      if (typeof value !== "object" || Array.isArray(value)) return value
      const out: Record<string, unknown> = { ...(value as Record<string, unknown>) }
      const recordNs = resolve(def, ns, named).namespace
      for (const f of (def.fields as ReadonlyArray<Def>) ?? []) {
        const name = String(f.name)
        if (name in out) out[name] = coerce(f.type, out[name], named, recordNs)
      }
      return out
    }
    case "array":
      return Array.isArray(value) ? value.map((v) => coerce(def.items, v, named, ns)) : value
    case "map": {
      if (typeof value !== "object" || Array.isArray(value)) return value
      return Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, coerce(def.values, v, named, ns)])
      )
    }
    case "enum":
      return typeof value === "string" ? value : value
    default:
      return value
  }
}

const describe = (schema: unknown, named: ReadonlyMap<string, Named>, ns: string | undefined): {
  readonly type: string
  readonly logicalType?: string | undefined
  readonly nullable: boolean
  readonly symbols?: ReadonlyArray<string> | undefined
} => {
  const { json, namespace } = resolve(schema, ns, named)
  if (Array.isArray(json)) {
    const branches = json.filter((b) => b !== "null")
    const nullable = branches.length < json.length
    return branches.length === 1
      ? { ...describe(branches[0], named, namespace), nullable }
      : { type: "union", nullable }
  }
  const def: Def = typeof json === "string" ? { type: json } : (json as Def)
  if (typeof def.type === "object") return describe(def.type, named, namespace)
  return {
    type: String(def.type),
    logicalType: typeof def.logicalType === "string" ? def.logicalType : undefined,
    nullable: def.type === "null",
    symbols: Array.isArray(def.symbols) ? (def.symbols as ReadonlyArray<string>) : undefined
  }
}

/** The fields of a record schema, with SQL types. */
export const fields = (
  record: Def,
  named: ReadonlyMap<string, Named>,
  namespace: string | undefined
): ReadonlyArray<SchemaBackend.SchemaField> =>
  ((record.fields as ReadonlyArray<Def>) ?? []).map((f) => {
    const d = describe(f.type, named, namespace)
    return {
      name: String(f.name),
      type: d.type,
      logicalType: d.logicalType,
      nullable: d.nullable,
      symbols: d.symbols,
      hasDefault: "default" in f,
      default: f.default,
      sqlType: SchemaBackend.sqlTypeOf(d.type, d.logicalType)
    }
  })
