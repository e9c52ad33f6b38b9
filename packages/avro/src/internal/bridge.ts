/**
 * A compiled bridge between a handle's Effect Schema and the Avro wire value, for the schemas codegen writes (and
 * any Schema made of the same pieces): structs, optional fields, `NullOr`, unions, arrays, records (maps), literals,
 * `String`, `Number`, `Int`, `Boolean`, `Uint8ArrayFromSelf`, `DateFromSelf`, `DateFromNumber` and `suspend`.
 *
 * Effect Schema's interpreter costs several times what avsc takes to write or read a record; this does the same
 * checks and conversions as plain function calls. It never decides a failure: on anything it does not expect
 * (a wrong type, a missing or excess property, an unknown Schema node) it answers `bail`, and the caller runs the
 * Effect Schema itself, which produces the value or the detailed `ParseError`. So the result is what
 * `Schema.encodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })` and
 * `Schema.decodeUnknownEither(schema)` produce, except that encoding returns parts of the input that need no
 * conversion as they are instead of copies (the wire value only goes to avsc). Decoding builds plain objects, as
 * Effect Schema does. Compiled with `keepDates`, encoding checks only and keeps the `Date`s, for the typed writer
 * (see `typed.ts`), which writes them as numbers.
 */
import * as Option from "effect/Option"
import * as AST from "effect/SchemaAST"
import * as Compiled from "./compiled.js"

/** The answer when the fast path cannot decide: run Effect Schema. */
export const bail: unique symbol = Symbol.for("@deimos/avro/bridge/bail")

type Fast = (value: unknown) => unknown

interface Node {
  readonly encode: Fast
  readonly decode: Fast
  /** Encoding returns its input unchanged (checks only). */
  readonly identity: boolean
  /** For checks only: the check as a JavaScript expression over the variable named `x`, for compiled structs. */
  readonly inline?: ((x: string) => string) | undefined
}

/** The encode and decode functions of a Schema AST, or undefined when a node is not supported. */
export interface Bridge {
  readonly encode: Fast
  readonly decode: Fast
}

const identifier = (ast: AST.AST) => Option.getOrUndefined(AST.getIdentifierAnnotation(ast))

const check = (test: (v: unknown) => boolean, inline?: (x: string) => string): Node => {
  const f: Fast = (v) => test(v) ? v : bail
  return { encode: f, decode: f, identity: true, inline }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const hasOwn = Object.prototype.hasOwnProperty

class Unsupported {}

/** What a compilation shares: the nodes compiled so far, and whether `DateFromNumber` keeps its `Date`s. */
interface Context {
  readonly memo: Map<AST.AST, Node>
  readonly keepDates: boolean
}

const compileNode = (ast: AST.AST, ctx: Context): Node => {
  const memo = ctx.memo
  const known = memo.get(ast)
  if (known !== undefined) return known
  switch (ast._tag) {
    case "StringKeyword":
      return check((v) => typeof v === "string", (x) => `typeof ${x} === "string"`)
    case "NumberKeyword":
      return check((v) => typeof v === "number", (x) => `typeof ${x} === "number"`)
    case "BooleanKeyword":
      return check((v) => typeof v === "boolean", (x) => `typeof ${x} === "boolean"`)
    case "UndefinedKeyword":
      return check((v) => v === undefined, (x) => `${x} === undefined`)
    case "Literal": {
      const literal = ast.literal
      const inline = literal === null || typeof literal === "string" || typeof literal === "boolean" ||
          (typeof literal === "number" && Number.isFinite(literal))
        ? (x: string) => `${x} === ${JSON.stringify(literal)}`
        : undefined
      return check((v) => v === literal, inline)
    }
    case "Refinement": {
      if (identifier(ast) !== "Int" || ast.from._tag !== "NumberKeyword") throw new Unsupported()
      return check((v) => Number.isSafeInteger(v), (x) => `Number.isSafeInteger(${x})`)
    }
    case "Declaration": {
      const id = identifier(ast)
      if (id === "DateFromSelf") return check((v) => v instanceof Date)
      if (id === "Uint8ArrayFromSelf") return check((v) => v instanceof Uint8Array)
      throw new Unsupported()
    }
    case "Transformation": {
      if (
        identifier(ast) !== "DateFromNumber" || ast.from._tag !== "NumberKeyword" || ast.to._tag !== "Declaration"
      ) {
        throw new Unsupported()
      }
      if (ctx.keepDates) return check((v) => v instanceof Date, (x) => `${x} instanceof Date`)
      return {
        encode: (v) => v instanceof Date ? v.getTime() : bail,
        decode: (v) => typeof v === "number" ? new Date(v) : bail,
        identity: false
      }
    }
    case "Suspend": {
      // recursive schemas: the node is resolved on first use, and memoised before its children are compiled
      const holder: { node: Node | undefined } = { node: undefined }
      const lazy: Node = {
        encode: (v) => (holder.node ??= compileNode(ast.f(), ctx)).encode(v),
        decode: (v) => (holder.node ??= compileNode(ast.f(), ctx)).decode(v),
        identity: false
      }
      memo.set(ast, lazy)
      // compile now so an unsupported node is found up front (the recursion stops at this memoised node)
      holder.node = compileNode(ast.f(), ctx)
      return lazy
    }
    case "Union": {
      const members = ast.types.map((t) => compileNode(t, ctx))
      const identity = members.every((m) => m.identity)
      const n = members.length
      const inlines = members.map((m) => m.inline)
      const inline = inlines.every((i) => i !== undefined)
        ? (x: string) => `(${inlines.map((i) => i!(x)).join(" || ")})`
        : undefined
      return {
        inline,
        encode: (v) => {
          for (let i = 0; i < n; i++) {
            const out = members[i].encode(v)
            if (out !== bail) return out
          }
          return bail
        },
        decode: (v) => {
          for (let i = 0; i < n; i++) {
            const out = members[i].decode(v)
            if (out !== bail) return out
          }
          return bail
        },
        identity
      }
    }
    case "TupleType": {
      if (ast.elements.length !== 0 || ast.rest.length !== 1) throw new Unsupported()
      const item = compileNode(ast.rest[0].type, ctx)
      return {
        encode: (v) => {
          if (!Array.isArray(v)) return bail
          if (item.identity) {
            for (let i = 0; i < v.length; i++) if (item.encode(v[i]) === bail) return bail
            return v
          }
          const out = new Array(v.length)
          for (let i = 0; i < v.length; i++) {
            const x = item.encode(v[i])
            if (x === bail) return bail
            out[i] = x
          }
          return out
        },
        decode: (v) => {
          if (!Array.isArray(v)) return bail
          const out = new Array(v.length)
          for (let i = 0; i < v.length; i++) {
            const x = item.decode(v[i])
            if (x === bail) return bail
            out[i] = x
          }
          return out
        },
        identity: item.identity
      }
    }
    case "TypeLiteral":
      return ast.propertySignatures.length === 0 ? compileMap(ast, ctx) : compileStruct(ast, ctx)
    default:
      throw new Unsupported()
  }
}

/** `Schema.Record({ key: Schema.String, value })`: an Avro map. */
const compileMap = (ast: AST.TypeLiteral, ctx: Context): Node => {
  if (ast.indexSignatures.length !== 1 || ast.indexSignatures[0].parameter._tag !== "StringKeyword") {
    throw new Unsupported()
  }
  const value = compileNode(ast.indexSignatures[0].type, ctx)
  return {
    encode: (v) => {
      if (!isRecord(v)) return bail
      if (value.identity) {
        for (const k in v) if (!hasOwn.call(v, k) || value.encode(v[k]) === bail) return bail
        return v
      }
      const out: Record<string, unknown> = {}
      for (const k in v) {
        if (!hasOwn.call(v, k)) return bail
        const x = value.encode(v[k])
        if (x === bail) return bail
        out[k] = x
      }
      return out
    },
    decode: (v) => {
      if (!isRecord(v)) return bail
      const out: Record<string, unknown> = {}
      for (const k in v) {
        if (!hasOwn.call(v, k)) continue
        const x = value.decode(v[k])
        if (x === bail) return bail
        out[k] = x
      }
      return out
    },
    identity: value.identity
  }
}

/**
 * `Schema.Struct`: an Avro record. Encoding refuses excess properties (`onExcessProperty: "error"`). The common
 * case, every property present, is generated code (`Compiled.structBridge`) that checks primitives inline and
 * builds the output as one object literal; absent optional properties take the general loop.
 */
const compileStruct = (ast: AST.TypeLiteral, ctx: Context): Node => {
  if (ast.indexSignatures.length !== 0) throw new Unsupported()
  const names: Array<string> = []
  for (const ps of ast.propertySignatures) {
    if (typeof ps.name !== "string") throw new Unsupported()
    names.push(ps.name)
  }
  const optional = ast.propertySignatures.map((ps) => ps.isOptional)
  const props = ast.propertySignatures.map((ps) => compileNode(ps.type, ctx))
  const identity = props.every((p) => p.identity)
  const n = names.length

  const encodeLoop = (v: Record<string, unknown>): unknown => {
    const out: Record<string, unknown> | undefined = identity ? undefined : {}
    for (let i = 0; i < n; i++) {
      const name = names[i]
      const x = v[name]
      if (x === undefined && !hasOwn.call(v, name)) {
        if (optional[i]) continue
        return bail
      }
      const y = props[i].encode(x)
      if (y === bail) return bail
      if (out !== undefined) out[name] = y
    }
    return out ?? v
  }
  const decodeLoop = (v: Record<string, unknown>): unknown => {
    const out: Record<string, unknown> = {}
    for (let i = 0; i < n; i++) {
      const name = names[i]
      const x = v[name]
      if (x === undefined && !(name in v)) {
        if (optional[i]) continue
        return bail
      }
      const y = props[i].decode(x)
      if (y === bail) return bail
      out[name] = y
    }
    return out
  }

  const { decodeAll, encodeAll } = Compiled.structBridge({ names, props, identity, bail, encodeLoop, decodeLoop })
  return {
    encode: (v) => isRecord(v) ? encodeAll(v) : bail,
    decode: (v) => isRecord(v) ? decodeAll(v) : bail,
    identity
  }
}

/**
 * The bridge of a Schema AST, or undefined when it holds a node the fast path does not know. With `keepDates`,
 * encoding leaves the `Date`s of `DateFromNumber` as they are (checks only): for a writer that turns them into
 * numbers itself.
 */
export const compile = (ast: AST.AST, options: { readonly keepDates?: boolean } = {}): Bridge | undefined => {
  try {
    const node = compileNode(ast, { memo: new Map(), keepDates: options.keepDates === true })
    return { encode: node.encode, decode: node.decode }
  } catch (error) {
    if (error instanceof Unsupported) return undefined
    throw error
  }
}
