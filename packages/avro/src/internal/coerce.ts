/**
 * Coercion: loosely-typed input turned into what the schema expects, compiled once per Avro schema and Effect Schema
 * AST into a tree of functions, so the per-message cost is a walk of type checks. A node returns its input itself
 * when nothing in it needs converting (records, arrays and maps are copied only when a value inside changes).
 *
 * The Avro schema says what the wire wants (the units of logical types, records, arrays, maps, unions); the type
 * side of the handle's Effect Schema AST, when given, says what the payload holds at each place, e.g. a `Date` where
 * `Schema.DateFromNumber` turns it into epoch millis, or a number of microseconds where the Schema is a plain `Int`
 * on a `timestamp-micros` long. What cannot be coerced is left as it is, for validation to report.
 */
import * as Option from "effect/Option"
import * as AST from "effect/SchemaAST"
import * as Compiled from "./compiled.js"
import { branchNameOf, isWrappedUnion, type Named, resolve } from "./schemas.js"

/** A compiled coercion. */
export type Coerce = (value: unknown) => unknown

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

/** An instant: epoch milliseconds and the microseconds within that millisecond (0–999), apart so both stay exact. */
interface Instant {
  readonly ms: number
  readonly us: number
}

/**
 * The instant of an ISO 8601 date or date-time (as `Date.parse` reads it), keeping every fractional digit down to
 * the microsecond (`Date.parse` stops at the millisecond); undefined when it is not a date.
 */
const parseInstant = (text: string): Instant | undefined => {
  const m = fraction.exec(text)
  if (m === null) {
    const ms = Date.parse(text)
    return Number.isNaN(ms) ? undefined : { ms, us: 0 }
  }
  const seconds = Date.parse(m[1] + m[3])
  if (Number.isNaN(seconds)) return undefined
  const micros = Number((m[2] + "00000").slice(0, 6))
  return { ms: seconds + Math.floor(micros / 1000), us: micros % 1000 }
}

/**
 * An instant in the units of a logical type (floored: a date is the day it falls in), computed from the millis for
 * millis and days (the epoch micros of a far date are no longer exact doubles); undefined when the result is not a
 * safe integer, the range a long holds exactly, so that the value is left for validation to refuse.
 */
const inUnits = ({ ms, us }: Instant, perUnit: number): number | undefined => {
  const units = perUnit === 1 ? ms * 1000 + us : perUnit === 1000 ? ms : Math.floor(ms / (perUnit / 1000))
  return Number.isSafeInteger(units) ? units : undefined
}

/** An integer in the units a logical type wants from a date or an ISO string; undefined when it is neither. */
const integerFromDate = (value: unknown, logicalType: unknown): number | undefined => {
  const perUnit = microsPerUnit(logicalType)
  if (value instanceof Date) {
    const ms = value.getTime()
    return Number.isNaN(ms) ? undefined : inUnits({ ms, us: 0 }, perUnit ?? 1000)
  }
  if (typeof value === "string" && perUnit !== undefined) {
    const instant = parseInstant(value)
    return instant === undefined ? undefined : inUnits(instant, perUnit)
  }
  return undefined
}

/** The number of an integer when it is a safe integer (exact as a number: the range of a long), else the value. */
const exactInteger = (value: unknown, n: number): unknown => Number.isSafeInteger(n) ? n : value

const coerceInteger = (value: unknown, logicalType: unknown): unknown => {
  if (typeof value === "number") return value
  if (typeof value === "bigint") return exactInteger(value, Number(value))
  if (typeof value === "string" && integer.test(value)) return exactInteger(value, Number(value.trim()))
  return integerFromDate(value, logicalType) ?? value
}

const coerceFloat = (value: unknown): unknown => {
  if (typeof value === "number") return value
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

const coerceBoolean = (value: unknown): unknown => typeof value === "boolean" ? value : Boolean(value)

const coerceBigInt = (value: unknown, logicalType: unknown): unknown => {
  if (typeof value === "bigint") return value
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value)
  if (typeof value === "string" && integer.test(value)) return BigInt(value.trim())
  const units = integerFromDate(value, logicalType)
  return units === undefined ? value : BigInt(units)
}

/**
 * The epoch millis of a number in units of `perUnit` microseconds, floored to the millisecond it falls in. Millis
 * are taken as they are and days multiplied by the millis of a day: going through micros (× 1000 and back) would
 * round far dates.
 */
const millisOf = (units: number, perUnit: number): number =>
  Math.floor(perUnit >= 1000 ? units * (perUnit / 1000) : units / (1000 / perUnit))

/**
 * A `Date` from a date, an ISO string, or a number, a numeric string or a safe-integer bigint in the units of the
 * wire's logical type (millis by default).
 */
const coerceDate = (value: unknown, logicalType: unknown): unknown => {
  if (value instanceof Date) return value
  const perUnit = microsPerUnit(logicalType) ?? 1000
  if (typeof value === "number") return new Date(millisOf(value, perUnit))
  if (typeof value === "bigint") {
    const n = Number(value)
    return Number.isSafeInteger(n) ? new Date(millisOf(n, perUnit)) : value
  }
  if (typeof value === "string") {
    if (numeric.test(value)) return new Date(millisOf(Number(value), perUnit))
    const instant = parseInstant(value)
    return instant === undefined ? value : new Date(instant.ms)
  }
  return value
}

/** The type side of an Effect Schema AST node: through suspensions, transformations (their `to`) and refinements. */
export const typeSide = (ast: AST.AST): AST.AST => {
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

const same: Coerce = (value) => value

/**
 * A compiled node: its function, and when it has one, the JavaScript expression over a value that is true when the
 * function would answer the value itself (so records skip the call for values already right).
 */
interface Node {
  readonly f: Coerce
  readonly check?: ((x: string) => string) | undefined
}

const identity: Node = { f: same }

/** What a leaf leaves as it is, besides `null` and `undefined`, by the `typeof` it answers itself for. */
const leafNode = (f: Coerce, accepts: string | undefined): Node => ({
  f: nullable(f),
  check: (x) => `${x} == null${accepts === undefined ? "" : ` || ${accepts.replaceAll("$", x)}`}`
})

/** A leaf coerced to what the type side wants (a number, a bigint, a string, a boolean, a `Date`), in wire units. */
const leafOf = (side: AST.AST, avroType: string, logicalType: unknown): Node => {
  switch (side._tag) {
    case "NumberKeyword":
      return avroType === "int" || avroType === "long"
        ? leafNode((v) => coerceInteger(v, logicalType), `typeof $ === "number"`)
        : leafNode(coerceFloat, `typeof $ === "number"`)
    case "BigIntKeyword":
      return leafNode((v) => coerceBigInt(v, logicalType), `typeof $ === "bigint"`)
    case "StringKeyword":
      return leafNode(coerceString, `typeof $ === "string"`)
    case "BooleanKeyword":
      return leafNode(coerceBoolean, `typeof $ === "boolean"`)
    case "Declaration": {
      const id = Option.getOrUndefined(AST.getIdentifierAnnotation(side))
      return id !== undefined && dateIds.has(id)
        ? leafNode((v) => coerceDate(v, logicalType), `$ instanceof Date`)
        : identity
    }
    default:
      return identity
  }
}

/** A leaf without an Effect Schema: the Avro type alone decides. */
const avroLeafOf = (avroType: string, logicalType: unknown): Node =>
  avroType === "int" || avroType === "long"
    ? leafNode((v) => coerceInteger(v, logicalType), `typeof $ === "number"`)
    : avroType === "float" || avroType === "double"
    ? leafNode(coerceFloat, `typeof $ === "number"`)
    : avroType === "string"
    ? leafNode(coerceString, `typeof $ === "string"`)
    : leafNode(coerceBoolean, `typeof $ === "boolean"`)

const nullable = (leaf: Coerce): Coerce => (v) => v === null || v === undefined ? v : leaf(v)

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

interface Context {
  readonly named: ReadonlyMap<string, Named>
  /** Records compiled or being compiled, per definition, narrowed AST and namespace (records may recur). */
  readonly records: Map<unknown, Map<unknown, Map<string | undefined, { f: Coerce | undefined }>>>
}

const noAst = {}

const compileRecord = (
  def: Def,
  side: AST.AST | undefined,
  ns: string | undefined,
  ctx: Context
): Node => {
  let byAst = ctx.records.get(def)
  if (byAst === undefined) ctx.records.set(def, byAst = new Map())
  let byNs = byAst.get(side ?? noAst)
  if (byNs === undefined) byAst.set(side ?? noAst, byNs = new Map())
  const known = byNs.get(ns)
  if (known !== undefined) return { f: known.f ?? ((v) => known.f!(v)) }
  const holder: { f: Coerce | undefined } = { f: undefined }
  byNs.set(ns, holder)
  const recordNs = resolve(def, ns, ctx.named).namespace
  const names: Array<string> = []
  const subs: Array<Coerce> = []
  const checks: Array<((x: string) => string) | undefined> = []
  for (const f of (def.fields as ReadonlyArray<Def>) ?? []) {
    const name = String(f.name)
    const typed = propertyType(side, name)
    // a field the Effect Schema does not declare is left to its validation
    if (side !== undefined && typed === undefined) continue
    const sub = compileNode(f.type, typed, recordNs, ctx)
    if (sub === identity) continue
    names.push(name)
    subs.push(sub.f)
    checks.push(sub.check)
  }
  // a field that is missing or undefined is left as it is (every node passes undefined through)
  holder.f = names.length === 0 ? same : Compiled.recordCoercion(names, subs, checks)
  return { f: holder.f }
}

const compileWrapped = (
  branches: ReadonlyArray<unknown>,
  ast: AST.AST | undefined,
  ns: string | undefined,
  ctx: Context
): Node => {
  const byName = new Map<string, Coerce>()
  for (const b of branches) {
    const name = branchNameOf(b, ns, ctx.named)
    if (byName.has(name)) continue
    const typed = ast === undefined
      ? undefined
      : members(ast).map((m) => propertyType(typeSide(m), name)).find((t) => t !== undefined)
    // a branch the Effect Schema does not declare is left to its validation
    if (ast !== undefined && typed === undefined) continue
    byName.set(name, compileNode(b, typed, ns, ctx).f)
  }
  return {
    f: (v) => {
      if (!isObject(v)) return v
      const keys = Object.keys(v)
      if (keys.length !== 1) return v
      const f = byName.get(keys[0])
      if (f === undefined) return v
      const inner = v[keys[0]]
      if (inner === null || inner === undefined) return v
      const out = f(inner)
      return out === inner ? v : { [keys[0]]: out }
    }
  }
}

const compileNode = (
  schema: unknown,
  ast: AST.AST | undefined,
  namespace: string | undefined,
  ctx: Context
): Node => {
  const { json, namespace: ns } = resolve(schema, namespace, ctx.named)
  if (Array.isArray(json)) {
    const branches = json.filter((b) => b !== "null")
    if (branches.length === 1) return compileNode(branches[0], ast, ns, ctx)
    return isWrappedUnion(branches, ns, ctx.named) ? compileWrapped(branches, ast, ns, ctx) : identity
  }
  if (json === null || (typeof json !== "string" && typeof json !== "object")) return identity
  const def: Def = typeof json === "string" ? { type: json } : (json as Def)
  if (typeof def.type === "object") return def.type === null ? identity : compileNode(def.type, ast, ns, ctx)
  const type = String(def.type)
  const side = ast === undefined ? undefined : narrow(ast)
  switch (type) {
    case "int":
    case "long":
    case "float":
    case "double":
    case "string":
    case "boolean":
      return side === undefined ? avroLeafOf(type, def.logicalType) : leafOf(side, type, def.logicalType)
    case "record":
    case "error":
      if (side !== undefined && side._tag !== "TypeLiteral") return identity
      return compileRecord(def, side, ns, ctx)
    case "array": {
      if (side !== undefined && (side._tag !== "TupleType" || side.rest.length === 0)) return identity
      const node = compileNode(
        def.items,
        side === undefined ? undefined : (side as AST.TupleType).rest[0].type,
        ns,
        ctx
      )
      if (node === identity) return identity
      const item = node.f
      return {
        f: (v) => {
          if (!Array.isArray(v)) return v
          let out: Array<unknown> | undefined
          for (let i = 0; i < v.length; i++) {
            const x = v[i]
            const y = x === null || x === undefined ? x : item(x)
            if (y !== x) (out ??= v.slice())[i] = y
          }
          return out ?? v
        }
      }
    }
    case "map": {
      if (side !== undefined && (side._tag !== "TypeLiteral" || side.indexSignatures.length === 0)) return identity
      const node = compileNode(
        def.values,
        side === undefined ? undefined : (side as AST.TypeLiteral).indexSignatures[0].type,
        ns,
        ctx
      )
      if (node === identity) return identity
      const value = node.f
      return {
        f: (v) => {
          if (!isObject(v)) return v
          let out: Record<string, unknown> | undefined
          for (const k of Object.keys(v)) {
            const x = v[k]
            const y = x === null || x === undefined ? x : value(x)
            if (y !== x) (out ??= { ...v })[k] = y
          }
          return out ?? v
        }
      }
    }
    default:
      return identity
  }
}

/**
 * The coercion of a schema (Avro JSON, resolved against `named` from `namespace`), for payloads typed by `ast` (the
 * handle's Effect Schema, both sides; its type side is used) or, without one, for wire values. Every node passes
 * `null` and `undefined` through.
 */
export const compile = (
  schema: unknown,
  ast: AST.AST | undefined,
  named: ReadonlyMap<string, Named>,
  namespace: string | undefined
): Coerce => compileNode(schema, ast, namespace, { named, records: new Map() }).f
