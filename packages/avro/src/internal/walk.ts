/**
 * Walks Avro schema JSON alongside values: coercion (REFERENCE §1), field descriptions and SQL types.
 */
import { SchemaBackend } from "@deimos/core"
import * as Option from "effect/Option"
import * as AST from "effect/SchemaAST"
import { branchNameOf, isWrappedUnion, type Named, resolve } from "./schemas.js"

type Def = { readonly [key: string]: unknown }

const numeric = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/
const integer = /^\s*[-+]?\d+\s*$/
// the fraction of seconds of an ISO date-time, split off so that digits beyond the millisecond are kept
const fraction = /^(\s*\d{4,}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)[.,](\d+)(.*)$/

/** Microseconds per unit of a logical type: 1000 for millis, 1 for micros, a day for `date`. */
const microsPerUnit = (logicalType: unknown): number | undefined =>
  logicalType === "timestamp-millis" || logicalType === "local-timestamp-millis"
    ? 1000
    : logicalType === "timestamp-micros" || logicalType === "local-timestamp-micros"
    ? 1
    : logicalType === "date"
    ? 86_400_000_000
    : undefined

/**
 * Epoch microseconds of an ISO 8601 date or date-time (as `Date.parse` reads it), keeping every fractional digit
 * down to the microsecond (`Date.parse` stops at the millisecond); undefined when it is not a date.
 */
export const parseMicros = (text: string): number | undefined => {
  const m = fraction.exec(text)
  if (m === null) {
    const ms = Date.parse(text)
    return Number.isNaN(ms) ? undefined : ms * 1000
  }
  const seconds = Date.parse(m[1] + m[3])
  if (Number.isNaN(seconds)) return undefined
  return seconds * 1000 + Number((m[2] + "00000").slice(0, 6))
}

/** Epoch microseconds in the units of a logical type (floored: a date is the day it falls in). */
const inUnits = (micros: number, perUnit: number) => perUnit === 1 ? micros : Math.floor(micros / perUnit)

/** An integer in the units a logical type wants from a date or an ISO string; undefined when it is neither. */
const integerFromDate = (value: unknown, logicalType: unknown): number | undefined => {
  const perUnit = microsPerUnit(logicalType)
  if (value instanceof Date) {
    const ms = value.getTime()
    return Number.isNaN(ms) ? undefined : inUnits(ms * 1000, perUnit ?? 1000)
  }
  if (typeof value === "string" && perUnit !== undefined) {
    const micros = parseMicros(value)
    return micros === undefined ? undefined : inUnits(micros, perUnit)
  }
  return undefined
}

const coerceInteger = (value: unknown, logicalType: unknown): unknown => {
  if (typeof value === "number") return value
  if (typeof value === "bigint") return Number(value)
  if (typeof value === "string" && integer.test(value)) return Number(value.trim())
  return integerFromDate(value, logicalType) ?? value
}

const coerceFloat = (value: unknown): unknown => {
  if (typeof value === "string" && numeric.test(value)) return Number(value)
  if (typeof value === "bigint") return Number(value)
  if (value instanceof Date) return value.getTime()
  return value
}

const coerceString = (value: unknown): unknown => {
  if (typeof value === "string") return value
  if (value instanceof Date) return value.toISOString()
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value)
  return value
}

/** A `Date` from a date, an ISO string or a number in the units of the wire's logical type (millis by default). */
const coerceDate = (value: unknown, logicalType: unknown): unknown => {
  if (value instanceof Date) return value
  const perUnit = microsPerUnit(logicalType) ?? 1000
  if (typeof value === "number") return new Date((value * perUnit) / 1000)
  if (typeof value === "string") {
    const micros = numeric.test(value) ? Number(value) * perUnit : parseMicros(value)
    return micros === undefined ? value : new Date(Math.floor(micros / 1000))
  }
  return value
}

/** The value of a wrapped union branch (`{ "<branch>": value }`): the branch's schema and name, when it is one. */
const wrappedBranch = (
  branches: ReadonlyArray<unknown>,
  value: unknown,
  named: ReadonlyMap<string, Named>,
  ns: string | undefined
): { readonly name: string; readonly schema: unknown } | undefined => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  const keys = Object.keys(value)
  if (keys.length !== 1) return undefined
  const schema = branches.find((b) => branchNameOf(b, ns, named) === keys[0])
  return schema === undefined ? undefined : { name: keys[0], schema }
}

/**
 * Coerces a value towards an Avro schema (the wire form): int/long from integer strings, dates and ISO strings
 * (epoch millis or micros as the logical type says, with every fractional digit, or days for `date`), float/double
 * from numeric strings, string from anything with a string form, boolean from truthiness; through unions with
 * null, wrapped unions, records, arrays and maps. What cannot be coerced is left for validation.
 */
export const coerce = (
  schema: unknown,
  value: unknown,
  named: ReadonlyMap<string, Named>,
  namespace: string | undefined
): unknown => coerceTyped(schema, undefined, value, named, namespace)

/** The type side of an Effect Schema AST node: through suspensions, transformations (their `to`) and refinements. */
const typeSide = (ast: AST.AST): AST.AST => {
  for (;;) {
    switch (ast._tag) {
      case "Suspend":
        ast = ast.f()
        continue
      case "Transformation":
        ast = ast.to
        continue
      case "Refinement":
        ast = ast.from
        continue
      default:
        return ast
    }
  }
}

const isNullish = (ast: AST.AST) =>
  ast._tag === "UndefinedKeyword" || ast._tag === "VoidKeyword" || (ast._tag === "Literal" && ast.literal === null)

const dateIds = new Set(["DateFromSelf", "ValidDateFromSelf"])

/** The members of a type-side union other than null and undefined (the node itself when not a union). */
const members = (ast: AST.AST): ReadonlyArray<AST.AST> => {
  const side = typeSide(ast)
  if (side._tag !== "Union") return [ast]
  // unions are not flattened: `Schema.optional(Schema.NullOr(X))` is `Union(Union(X, null), undefined)`
  return side.types.flatMap((t) => isNullish(typeSide(t)) ? [] : members(t))
}

/** The AST of a property of a type-side struct (narrowed), undefined when the struct does not declare it. */
const propertyType = (side: AST.AST | undefined, name: string): AST.AST | undefined =>
  side?._tag === "TypeLiteral" ? side.propertySignatures.find((p) => p.name === name)?.type : undefined

/**
 * The type side of an AST node narrowed to its one member other than null and undefined (optional fields, `NullOr`);
 * undefined for `unknown` / `any`, where the Avro schema alone decides.
 */
const narrow = (ast: AST.AST): AST.AST | undefined => {
  const rest = members(ast)
  const side = typeSide(rest.length === 1 ? rest[0] : ast)
  return side._tag === "UnknownKeyword" || side._tag === "AnyKeyword" ? undefined : side
}

/** A leaf coerced to what the type side wants (a number, a bigint, a string, a boolean, a `Date`), in wire units. */
const coerceLeaf = (side: AST.AST, avroType: unknown, logicalType: unknown, value: unknown): unknown => {
  switch (side._tag) {
    case "NumberKeyword":
      return avroType === "int" || avroType === "long" ? coerceInteger(value, logicalType) : coerceFloat(value)
    case "BigIntKeyword": {
      if (typeof value === "bigint") return value
      if (typeof value === "number" && Number.isInteger(value)) return BigInt(value)
      if (typeof value === "string" && integer.test(value)) return BigInt(value.trim())
      const units = integerFromDate(value, logicalType)
      return units === undefined ? value : BigInt(units)
    }
    case "StringKeyword":
      return coerceString(value)
    case "BooleanKeyword":
      return typeof value === "boolean" ? value : Boolean(value)
    case "Declaration": {
      const id = Option.getOrUndefined(AST.getIdentifierAnnotation(side))
      return id !== undefined && dateIds.has(id) ? coerceDate(value, logicalType) : value
    }
    default:
      return value
  }
}

/**
 * Coerces a value towards a handle's payload: the Avro schema says what the wire wants (units of logical types,
 * records, arrays, maps, unions), and the type side of the handle's Effect Schema AST (when given) says what the
 * payload holds there, e.g. a `Date` where `Schema.DateFromNumber` turns it into epoch millis, or a number of
 * microseconds where the Schema is a plain `Int` on a `timestamp-micros` long. Without an AST this is the Avro
 * coercion of the wire form.
 */
export const coerceTyped = (
  schema: unknown,
  ast: AST.AST | undefined,
  value: unknown,
  named: ReadonlyMap<string, Named>,
  namespace: string | undefined
): unknown => {
  if (value === null || value === undefined) return value
  const { json, namespace: ns } = resolve(schema, namespace, named)
  if (Array.isArray(json)) {
    const branches = json.filter((b) => b !== "null")
    if (branches.length === 1) return coerceTyped(branches[0], ast, value, named, ns)
    if (!isWrappedUnion(branches, ns, named)) return value
    const branch = wrappedBranch(branches, value, named, ns)
    if (branch === undefined) return value
    const inner = (value as Record<string, unknown>)[branch.name]
    const typed = ast === undefined
      ? undefined
      : members(ast).map((m) => propertyType(typeSide(m), branch.name)).find((t) => t !== undefined)
    if (ast !== undefined && typed === undefined) return value
    return { [branch.name]: coerceTyped(branch.schema, typed, inner, named, ns) }
  }
  const def: Def = typeof json === "string" ? { type: json } : (json as Def)
  const type = typeof def.type === "object" ? null : def.type
  if (type === null) return coerceTyped(def.type, ast, value, named, ns)
  const side = ast === undefined ? undefined : narrow(ast)
  switch (type) {
    case "int":
    case "long":
      return side === undefined ? coerceInteger(value, def.logicalType) : coerceLeaf(side, type, def.logicalType, value)
    case "float":
    case "double":
      return side === undefined ? coerceFloat(value) : coerceLeaf(side, type, def.logicalType, value)
    case "string":
      return side === undefined ? coerceString(value) : coerceLeaf(side, type, def.logicalType, value)
    case "boolean":
      return side === undefined
        ? (typeof value === "boolean" ? value : Boolean(value))
        : coerceLeaf(side, type, def.logicalType, value)
    case "record":
    case "error": {
      if (typeof value !== "object" || Array.isArray(value) || value instanceof Date) return value
      if (side !== undefined && side._tag !== "TypeLiteral") return value
      const out: Record<string, unknown> = { ...(value as Record<string, unknown>) }
      const recordNs = resolve(def, ns, named).namespace
      for (const f of (def.fields as ReadonlyArray<Def>) ?? []) {
        const name = String(f.name)
        if (!(name in out)) continue
        const typed = propertyType(side, name)
        // a field the Effect Schema does not declare is left to its validation
        if (side !== undefined && typed === undefined) continue
        out[name] = coerceTyped(f.type, typed, out[name], named, recordNs)
      }
      return out
    }
    case "array": {
      if (!Array.isArray(value)) return value
      if (side === undefined) return value.map((v) => coerceTyped(def.items, undefined, v, named, ns))
      if (side._tag !== "TupleType" || side.rest.length === 0) return value
      const element = side.rest[0].type
      return value.map((v) => coerceTyped(def.items, element, v, named, ns))
    }
    case "map": {
      if (typeof value !== "object" || Array.isArray(value)) return value
      let element: AST.AST | undefined = undefined
      if (side !== undefined) {
        if (side._tag !== "TypeLiteral" || side.indexSignatures.length === 0) return value
        element = side.indexSignatures[0].type
      }
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        out[k] = coerceTyped(def.values, element, v, named, ns)
      }
      return out
    }
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
