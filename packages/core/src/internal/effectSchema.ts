/**
 * Helpers over Effect Schema ASTs: field descriptions, coercion of loose input, issue lists.
 */
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import type * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"
import type { SchemaField } from "../SchemaBackend.js"
import type * as SchemaError from "../SchemaError.js"

/** Every issue of a parse error, with its field path. */
export const issuesOf = (error: ParseResult.ParseError): ReadonlyArray<SchemaError.Issue> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((i) => ({
    path: i.path.map((p) => typeof p === "symbol" ? String(p) : p),
    message: i.message
  }))

const identifier = (ast: AST.AST): string | undefined => Option.getOrUndefined(AST.getIdentifierAnnotation(ast))

/** Strips refinements, suspensions and transformations down to the type-side AST. */
const unwrap = (ast: AST.AST): AST.AST => {
  switch (ast._tag) {
    case "Refinement":
      return identifier(ast) === "Int" ? ast : unwrap(ast.from)
    case "Transformation":
      return unwrap(ast.to)
    case "Suspend":
      return unwrap(ast.f())
    default:
      return ast
  }
}

const isNullish = (ast: AST.AST) =>
  ast._tag === "UndefinedKeyword" || ast._tag === "VoidKeyword" || (ast._tag === "Literal" && ast.literal === null)

interface Described {
  readonly type: string
  readonly logicalType?: string | undefined
  readonly symbols?: ReadonlyArray<string> | undefined
  readonly nullable: boolean
}

const describe = (input: AST.AST): Described => {
  const ast = unwrap(input)
  switch (ast._tag) {
    case "StringKeyword":
    case "TemplateLiteral":
      return { type: "string", nullable: false }
    case "NumberKeyword":
      return { type: "double", nullable: false }
    case "Refinement":
      return { type: "long", nullable: false }
    case "BigIntKeyword":
      return { type: "long", nullable: false }
    case "BooleanKeyword":
      return { type: "boolean", nullable: false }
    case "TypeLiteral":
      return ast.propertySignatures.length === 0 && ast.indexSignatures.length > 0
        ? { type: "map", nullable: false }
        : { type: "record", nullable: false }
    case "TupleType":
      return { type: "array", nullable: false }
    case "Enums":
      return { type: "enum", symbols: ast.enums.map(([name]) => name), nullable: false }
    case "Literal":
      return ast.literal === null
        ? { type: "null", nullable: true }
        : { type: typeof ast.literal === "string" ? "string" : typeof ast.literal, nullable: false }
    case "Declaration": {
      const id = identifier(ast)
      if (id === "DateFromSelf" || id === "ValidDateFromSelf") {
        return { type: "long", logicalType: "timestamp-millis", nullable: false }
      }
      if (id === "Uint8ArrayFromSelf") return { type: "bytes", nullable: false }
      return { type: "unknown", nullable: false }
    }
    case "Union": {
      const members = ast.types.filter((t) => !isNullish(unwrap(t)))
      const nullable = members.length < ast.types.length
      if (members.length > 0 && members.every((m) => unwrap(m)._tag === "Literal")) {
        const literals = members.map((m) => (unwrap(m) as AST.Literal).literal)
        if (literals.every((l) => typeof l === "string")) {
          return { type: "enum", symbols: literals as ReadonlyArray<string>, nullable }
        }
      }
      if (members.length === 1) return { ...describe(members[0]), nullable }
      return { type: "union", nullable }
    }
    case "UndefinedKeyword":
    case "VoidKeyword":
      return { type: "null", nullable: true }
    default:
      return { type: "unknown", nullable: false }
  }
}

const recordOf = (ast: AST.AST): AST.TypeLiteral | undefined => {
  const inner = unwrap(ast)
  return inner._tag === "TypeLiteral" ? inner : undefined
}

/** The fields of a struct schema (type side). */
export const fieldsOf = <A, I>(schema: Schema.Schema<A, I>): ReadonlyArray<SchemaField> => {
  const record = recordOf(schema.ast)
  if (record === undefined) return []
  return record.propertySignatures.map((ps) => {
    const d = describe(ps.type)
    return {
      name: String(ps.name),
      type: d.type,
      logicalType: d.logicalType,
      nullable: d.nullable || ps.isOptional,
      symbols: d.symbols,
      hasDefault: false
    }
  })
}

/** The type-side AST of one property of a struct schema. */
export const propertyOf = <A, I>(schema: Schema.Schema<A, I>, name: string): AST.AST | undefined =>
  recordOf(schema.ast)?.propertySignatures.find((ps) => ps.name === name)?.type

const numeric = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/

/**
 * Coerces loose input towards the type side of a schema: numbers from numeric strings and dates, strings from
 * anything with a string form, booleans from truthiness, dates from ISO strings and epoch millis; recurses through
 * records, maps (string-keyed `Schema.Record`), arrays and unions with null. Values it cannot coerce are left for validation to report.
 */
export const coerce = (input: AST.AST, value: unknown): unknown => {
  if (value === null || value === undefined) return value
  const ast = unwrap(input)
  switch (ast._tag) {
    case "NumberKeyword":
    case "Refinement": {
      if (typeof value === "string" && numeric.test(value)) return Number(value)
      if (value instanceof Date) return value.getTime()
      if (typeof value === "bigint") return Number(value)
      return value
    }
    case "BigIntKeyword": {
      if (typeof value === "string" && /^\s*[-+]?\d+\s*$/.test(value)) return BigInt(value.trim())
      if (typeof value === "number" && Number.isInteger(value)) return BigInt(value)
      return value
    }
    case "StringKeyword": {
      if (typeof value === "string") return value
      if (value instanceof Date) return value.toISOString()
      if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value)
      return value
    }
    case "BooleanKeyword":
      return typeof value === "boolean" ? value : Boolean(value)
    case "Declaration": {
      const id = identifier(ast)
      if ((id === "DateFromSelf" || id === "ValidDateFromSelf") && !(value instanceof Date)) {
        if (typeof value === "number") return new Date(value)
        if (typeof value === "string") {
          const d = numeric.test(value) ? new Date(Number(value)) : new Date(value)
          return Number.isNaN(d.getTime()) ? value : d
        }
      }
      return value
    }
    case "TypeLiteral": {
      if (typeof value !== "object" || Array.isArray(value)) return value
      const out: Record<string, unknown> = { ...(value as Record<string, unknown>) }
      const declared = new Set<string>()
      for (const ps of ast.propertySignatures) {
        const key = String(ps.name)
        declared.add(key)
        if (key in out) out[key] = coerce(ps.type, out[key])
      }
      // the values of a map (`Schema.Record({ key: Schema.String, value })`): every other own key
      const index = ast.indexSignatures.find((is) => unwrap(is.parameter)._tag === "StringKeyword")
      if (index !== undefined) {
        for (const key of Object.keys(out)) {
          if (!declared.has(key)) out[key] = coerce(index.type, out[key])
        }
      }
      return out
    }
    case "TupleType": {
      if (!Array.isArray(value) || ast.rest.length === 0) return value
      const element = ast.rest[0].type
      return value.map((v) => coerce(element, v))
    }
    case "Union": {
      const members = ast.types.filter((t) => !isNullish(unwrap(t)))
      return members.length === 1 ? coerce(members[0], value) : value
    }
    default:
      return value
  }
}
