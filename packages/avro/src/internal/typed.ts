/**
 * The typed reader of a handle with an Effect Schema: an avsc type that reads the Schema's decoded value directly,
 * when that can be shown from the two schemas, so decoding is one avsc read instead of a read and a second pass.
 *
 * Rule: the typed reader is the handle's Avro type with a logical type (`Date` from the number read) at each place
 * where the Schema decodes a number into a `Date` (`Schema.DateFromNumber`), and it is used only when every value
 * avsc can read there is one the Schema decodes to exactly that: strings where the Schema wants strings, numbers
 * where it wants numbers (an `Int` only on Avro `int` and `long`, which are whole), enums whose every symbol is one
 * of the Schema's literals, bytes and fixed where it wants `Uint8Array`s, arrays, maps, records whose fields are the
 * Struct's properties (an optional property may be missing from the record; a field the Struct does not declare is
 * refused, since Effect Schema would drop it), and unions where each Avro branch can only be decoded by one member
 * of the Schema's union. Anything else (refinements other than `Int`, other transformations, wrapped unions, a named
 * type met with two different Schemas) gives no typed reader, and the codec reads with the Avro type and runs the
 * Schema's decode (the compiled bridge, else Effect Schema) on the value read.
 *
 * Records come out as avsc reads them (avsc's record objects, as for handles without an Effect Schema), with the
 * Schema's `Date`s in them.
 */
import avro from "avsc"
import * as Option from "effect/Option"
import * as AST from "effect/SchemaAST"
import { typeOf } from "./avsc.js"
import { collectNamed, type Named } from "./schemas.js"

/**
 * `Date`s from the numbers read, as `Schema.DateFromNumber` decodes them (`new Date(n)`). The number comes from the
 * exact long that `typeOf` installs under it (or, through a resolver, from the writer's, made the same way): the
 * millis are exact over ±(2^53 − 1) and a number, never a bigint; a long outside that range is a `Decode` error
 * before a `Date` is made. Millis beyond the range of a `Date` (±8.64e15) give an invalid `Date`, as the Schema does.
 */
class DateFromNumber extends avro.types.LogicalType {
  protected override _fromValue(value: number): Date {
    return new Date(value)
  }
  protected override _toValue(value: unknown): unknown {
    return value instanceof Date ? value.getTime() : value
  }
  protected override _resolve(type: avro.Type): ((value: number) => Date) | undefined {
    const name = type.typeName
    return name === "int" || name === "long" || name === "float" || name === "double"
      ? (value) => new Date(value)
      : undefined
  }
}

type Def = { [key: string]: unknown }

const numbers = new Set(["int", "long", "float", "double"])
const wholeNumbers = new Set(["int", "long"])

/** The kind of JavaScript value avsc reads for an Avro type (its bucket: avsc wraps a union with two in one). */
type Kind = "null" | "boolean" | "number" | "string" | "bytes" | "array" | "object"

const kindOfAvro = (typeName: string): Kind | undefined => {
  switch (typeName) {
    case "null":
    case "boolean":
    case "string":
      return typeName
    case "enum":
      return "string"
    case "int":
    case "long":
    case "float":
    case "double":
      return "number"
    case "bytes":
    case "fixed":
      return "bytes"
    case "array":
      return "array"
    case "record":
    case "error":
    case "map":
      return "object"
    default:
      return undefined
  }
}

/**
 * The kinds of wire value an AST node can decode from (on its encoded side); `any` for `unknown` / `any`; `none`
 * for nodes that decode no avsc value (`undefined`, bigints, `DateFromSelf`); `other` for what this does not know.
 */
const kindOfAst = (ast: AST.AST): Kind | "any" | "none" | "other" => {
  switch (ast._tag) {
    case "Suspend":
      return kindOfAst(ast.f())
    case "Refinement":
    case "Transformation":
      return kindOfAst(ast.from)
    case "Literal":
      return ast.literal === null
        ? "null"
        : typeof ast.literal === "string"
        ? "string"
        : typeof ast.literal === "number"
        ? "number"
        : typeof ast.literal === "boolean"
        ? "boolean"
        : "none"
    case "StringKeyword":
      return "string"
    case "NumberKeyword":
      return "number"
    case "BooleanKeyword":
      return "boolean"
    case "TupleType":
      return "array"
    case "TypeLiteral":
      return "object"
    case "Declaration":
      return identifier(ast) === "Uint8ArrayFromSelf" ? "bytes" : "none"
    case "UnknownKeyword":
    case "AnyKeyword":
      return "any"
    case "UndefinedKeyword":
    case "VoidKeyword":
    case "NeverKeyword":
    case "BigIntKeyword":
      return "none"
    default:
      return "other"
  }
}

const identifier = (ast: AST.AST) => Option.getOrUndefined(AST.getIdentifierAnnotation(ast))

/** The members of a union, nested unions flattened (Effect Schema tries them in this order). */
const flatten = (ast: AST.AST): ReadonlyArray<AST.AST> => ast._tag === "Union" ? ast.types.flatMap(flatten) : [ast]

const untrusted: unique symbol = Symbol("untrusted")

interface Walk {
  readonly named: ReadonlyMap<string, Named>
  /** The `Date` places: fresh `{ type: <number type>, logicalType }` nodes put into the JSON. */
  readonly dates: Set<object>
  /** The Schema each named record was met with. */
  readonly records: Map<object, AST.AST>
  /** False once a Struct declares a property its record lacks. */
  exact: boolean
}

/** The definition a schema node stands for: a named type's JSON, or the node itself. */
const definition = (node: unknown, walk: Walk): unknown =>
  typeof node === "string" && walk.named.has(node) ? walk.named.get(node)!.json : node

const typeName = (def: unknown): string | undefined =>
  typeof def === "string"
    ? def
    : typeof def === "object" && def !== null && !Array.isArray(def)
    ? typeof (def as Def).type === "string" ? (def as Def).type as string : undefined
    : undefined

/**
 * Checks that the Schema `ast` decodes every value avsc reads for `node` to that value (up to `Date` places, which
 * are marked); answers the node to put in place of `node` (a number node made a `Date` place), or `untrusted`.
 */
const visit = (node: unknown, ast: AST.AST, walk: Walk): unknown => {
  if (Array.isArray(node) || ast._tag === "Union") return visitUnion(node, ast, walk)
  const def = definition(node, walk)
  const name = typeName(def)
  if (name === undefined) return untrusted
  switch (ast._tag) {
    case "Suspend":
      return visit(node, ast.f(), walk)
    case "UnknownKeyword":
    case "AnyKeyword":
      return node
    case "StringKeyword":
      return name === "string" || name === "enum" ? node : untrusted
    case "NumberKeyword":
      return numbers.has(name) ? node : untrusted
    case "BooleanKeyword":
      return name === "boolean" ? node : untrusted
    case "Literal":
      if (ast.literal === null) return name === "null" ? node : untrusted
      return name === "enum" && ((def as Def).symbols as ReadonlyArray<unknown>).every((s) => s === ast.literal)
        ? node
        : untrusted
    case "Refinement":
      return identifier(ast) === "Int" && ast.from._tag === "NumberKeyword" && wholeNumbers.has(name)
        ? node
        : untrusted
    case "Transformation": {
      if (identifier(ast) !== "DateFromNumber" || ast.from._tag !== "NumberKeyword" || !numbers.has(name)) {
        return untrusted
      }
      if (typeof node !== "string") return untrusted
      const place = { type: name, logicalType: "DateFromNumber" }
      walk.dates.add(place)
      return place
    }
    case "Declaration":
      return identifier(ast) === "Uint8ArrayFromSelf" && (name === "bytes" || name === "fixed") ? node : untrusted
    case "TupleType": {
      if (name !== "array" || ast.elements.length !== 0 || ast.rest.length !== 1) return untrusted
      const items = visit((def as Def).items, ast.rest[0].type, walk)
      if (items === untrusted) return untrusted
      ;(def as Def).items = items
      return node
    }
    case "TypeLiteral":
      if (name === "map") {
        const signatures = ast.indexSignatures
        if (
          ast.propertySignatures.length !== 0 || signatures.length !== 1 ||
          signatures[0].parameter._tag !== "StringKeyword"
        ) {
          return untrusted
        }
        const values = visit((def as Def).values, signatures[0].type, walk)
        if (values === untrusted) return untrusted
        ;(def as Def).values = values
        return node
      }
      return name === "record" || name === "error" ? visitRecord(node, def as Def, ast, walk) : untrusted
    default:
      return untrusted
  }
}

const visitRecord = (node: unknown, def: Def, ast: AST.TypeLiteral, walk: Walk): unknown => {
  const met = walk.records.get(def)
  if (met !== undefined) return met === ast ? node : untrusted
  walk.records.set(def, ast)
  if (ast.indexSignatures.length !== 0) return untrusted
  const fields = (def.fields as Array<Def>) ?? []
  const byName = new Map(fields.map((f) => [String(f.name), f]))
  const declared = new Set<string>()
  for (const ps of ast.propertySignatures) {
    if (typeof ps.name !== "string") return untrusted
    declared.add(ps.name)
    const field = byName.get(ps.name)
    if (field === undefined) {
      if (!ps.isOptional) return untrusted
      walk.exact = false
      continue
    }
    const type = visit(field.type, ps.type, walk)
    if (type === untrusted) return untrusted
    field.type = type
  }
  // a field the Struct does not declare: Effect Schema would drop it
  for (const name of byName.keys()) if (!declared.has(name)) return untrusted
  return node
}

const visitUnion = (node: unknown, ast: AST.AST, walk: Walk): unknown => {
  const branches: Array<unknown> = Array.isArray(node) ? node : [node]
  const members = flatten(ast)
  if (members.some((m) => kindOfAst(m) === "other")) return untrusted
  const kinds = new Set<Kind>()
  const out = [...branches]
  for (let i = 0; i < branches.length; i++) {
    const def = definition(branches[i], walk)
    const name = typeName(def)
    const kind = name === undefined ? undefined : kindOfAvro(name)
    // two branches of one kind: avsc wraps the union (`{ "<branch>": value }`)
    if (kind === undefined || kinds.has(kind)) return untrusted
    kinds.add(kind)
    const candidates = members.filter((m) => {
      const k = kindOfAst(m)
      return k === kind || k === "any" || (kind === "bytes" && k === "object")
    })
    if (name === "enum" && candidates.length > 0 && candidates.every((m) => m._tag === "Literal")) {
      // an enum decoded by literal members: each symbol must be one of them
      const literals = new Set(candidates.map((m) => (m as AST.Literal).literal))
      if (!((def as Def).symbols as ReadonlyArray<unknown>).every((s) => literals.has(s as string))) return untrusted
      continue
    }
    if (candidates.length !== 1) return untrusted
    const branch = visit(branches[i], candidates[0], walk)
    if (branch === untrusted) return untrusted
    out[i] = branch
  }
  return Array.isArray(node) ? out : out[0]
}

/** A typed reader, and whether every Struct's properties are fields of its record (then a payload the Schema
 * encodes has no undeclared field). */
export interface Typed {
  readonly type: avro.Type
  readonly exact: boolean
}

/**
 * The typed reader of `type` for the Effect Schema `ast` (see the module comment), or undefined when it cannot be
 * shown that it reads the Schema's decoded values. Without a `Date` place, the typed reader is `type` itself.
 */
export const typedReader = (type: avro.Type, ast: AST.AST): Typed | undefined => {
  const json = type.schema({ exportAttrs: true }) as unknown
  const named = new Map<string, Named>()
  collectNamed(json, undefined, "(typed reader)", named)
  const walk: Walk = { named, dates: new Set(), records: new Map(), exact: true }
  const root = visit(json, ast, walk)
  if (root === untrusted) return undefined
  if (walk.dates.size === 0) return { type, exact: walk.exact }
  const building = new Set<object>()
  const typed = typeOf(root, {
    typeHook: (schema, opts) => {
      if (typeof schema !== "object" || schema === null || !walk.dates.has(schema) || building.has(schema)) {
        return undefined
      }
      building.add(schema)
      try {
        return new DateFromNumber(schema, opts)
      } finally {
        building.delete(schema)
      }
    }
  })
  return { type: typed, exact: walk.exact }
}
