/**
 * Avro schemas as JSON plus their avsc types: loading a directory of `.avsc` files (named types resolved across
 * files), looking schemas up by full name, walking the JSON for coercion and field descriptions, and writing a schema
 * out on its own, as written, for registration.
 */
import type avro from "avsc"
import * as fs from "node:fs"
import * as path from "node:path"
import { typeOf } from "./avsc.js"

export type Json = string | { readonly [key: string]: unknown } | ReadonlyArray<unknown>

const primitives = new Set(["null", "boolean", "int", "long", "float", "double", "bytes", "string"])

export interface Named {
  readonly fullName: string
  readonly json: { readonly [key: string]: unknown }
  readonly file: string
}

/** Full name of a named type definition, given the enclosing namespace. */
export const fullNameOf = (
  def: { readonly name?: unknown; readonly namespace?: unknown },
  enclosing: string | undefined
) => {
  const name = String(def.name)
  if (name.includes(".")) return name
  const ns = typeof def.namespace === "string" ? def.namespace : enclosing
  return ns === undefined || ns === "" ? name : `${ns}.${name}`
}

const namespaceOf = (fullName: string) => {
  const dot = fullName.lastIndexOf(".")
  return dot < 0 ? undefined : fullName.slice(0, dot)
}

/** Collects every named type defined in a schema (records, enums, fixed, nested ones too). */
export const collectNamed = (schema: unknown, enclosing: string | undefined, file: string, out: Map<string, Named>) => {
  if (Array.isArray(schema)) {
    for (const s of schema) collectNamed(s, enclosing, file, out)
    return
  }
  if (typeof schema !== "object" || schema === null) return
  const def = schema as { readonly [key: string]: unknown }
  const type = def.type
  if (type === "record" || type === "error" || type === "enum" || type === "fixed") {
    const fullName = fullNameOf(def, enclosing)
    out.set(fullName, { fullName, json: def, file })
    if (Array.isArray(def.fields)) {
      for (const f of def.fields as ReadonlyArray<{ readonly type: unknown }>) {
        collectNamed(f.type, namespaceOf(fullName), file, out)
      }
    }
    return
  }
  if (type === "array") collectNamed(def.items, enclosing, file, out)
  else if (type === "map") collectNamed(def.values, enclosing, file, out)
  else if (typeof type === "object") collectNamed(type, enclosing, file, out)
}

/** The named types of a set of schema directories, parsed by avsc (named types resolved across files). */
export interface SchemaDirectory {
  readonly dirs: ReadonlyArray<string>
  readonly named: ReadonlyMap<string, Named>
  readonly registry: { readonly [name: string]: avro.Type }
  /** The avsc type of a named schema, or undefined. */
  readonly type: (fullName: string) => avro.Type | undefined
  /** The directories searched, for error messages. */
  readonly searched: () => string
}

/** Why a directory could not be loaded: the file and the problem (a missing type, bad JSON, a duplicate name). */
export interface DirectoryProblem {
  readonly file: string
  readonly message: string
  readonly cause: unknown
}

/**
 * Loads every `.avsc` file under `dirs` (recursively). Files are parsed in passes so types referenced across files
 * are registered before their users; each attempt parses into a copy of the registry, so a file that fails leaves
 * nothing behind. Returns the problem of the first file that cannot be parsed (its referenced type missing, bad
 * JSON, a type defined twice).
 */
export const loadDirectory = (dirs: ReadonlyArray<string>): SchemaDirectory | DirectoryProblem => {
  const files = dirs.flatMap((d) => listAvsc(d))
  const named = new Map<string, Named>()
  const registry: { [name: string]: avro.Type } = {}
  let left: Array<{ readonly file: string; readonly json: unknown; error?: unknown }> = []
  for (const file of files) {
    let json: unknown
    try {
      json = JSON.parse(fs.readFileSync(file, "utf8"))
    } catch (cause) {
      return { file, message: `${file} is not a readable JSON Avro schema: ${String(cause)}`, cause }
    }
    collectNamed(json, undefined, file, named)
    left.push({ file, json })
  }
  while (left.length > 0) {
    const failed: typeof left = []
    for (const p of left) {
      const scratch = { ...registry }
      try {
        typeOf(p.json, { registry: scratch })
        Object.assign(registry, scratch)
      } catch (error) {
        failed.push({ ...p, error })
      }
    }
    if (failed.length === left.length) {
      const { error, file } = failed[0]
      const text = error instanceof Error ? error.message : String(error)
      const missing = /undefined type name: (\S+)/.exec(text)?.[1]
      return {
        file,
        cause: error,
        message: missing === undefined
          ? `${file} is not a valid Avro schema: ${text}`
          : `${file} references the type ${missing}, which no .avsc file in ${dirs.join(", ")} defines`
      }
    }
    left = failed
  }
  const types = new Map<string, avro.Type>()
  return {
    dirs,
    named,
    registry,
    type: (fullName) => {
      const cached = types.get(fullName)
      if (cached !== undefined) return cached
      const t = registry[fullName]
      if (t !== undefined) types.set(fullName, t)
      return t
    },
    searched: () => dirs.join(", ")
  }
}

const listAvsc = (dir: string): Array<string> => {
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name)
    if (e.isDirectory()) return listAvsc(full)
    return e.name.endsWith(".avsc") ? [full] : []
  }).sort()
}

/** The named type a name stands for in a namespace: the name qualified by the namespace, else the name itself. */
const lookup = (name: string, enclosing: string | undefined, named: ReadonlyMap<string, Named>): Named | undefined => {
  const candidates = name.includes(".") ? [name] : [enclosing === undefined ? name : `${enclosing}.${name}`, name]
  for (const c of candidates) {
    const found = named.get(c)
    if (found !== undefined) return found
  }
  return undefined
}

/**
 * Keys in Avro's canonical order: the Parsing Canonical Form's (name, type, fields, symbols, items, values, size),
 * with `namespace` after `name`, then the attributes that form drops (doc, default, order, aliases, logical types),
 * then any other attribute in alphabetical order. Values are kept as they are (defaults are data).
 */
const canonicalOrder = [
  "name",
  "namespace",
  "type",
  "fields",
  "symbols",
  "items",
  "values",
  "size",
  "doc",
  "default",
  "order",
  "aliases",
  "logicalType",
  "precision",
  "scale"
]
const rank = new Map(canonicalOrder.map((k, i) => [k, i]))

const ordered = (def: { readonly [key: string]: unknown }): { readonly [key: string]: unknown } => {
  const keys = Object.keys(def).sort((a, b) => {
    const ra = rank.get(a) ?? canonicalOrder.length
    const rb = rank.get(b) ?? canonicalOrder.length
    return ra !== rb ? ra - rb : a < b ? -1 : a > b ? 1 : 0
  })
  const out: { [key: string]: unknown } = {}
  for (const k of keys) out[k] = def[k]
  return out
}

/**
 * A schema as written, standing on its own: every named type it references (from `named`: other files, or the
 * handle's own definitions) written out at its first use and referred to by name after it, every attribute kept
 * (`logicalType`, `doc`, defaults, custom ones). So that one schema is one text however it was written, object keys
 * are in Avro's canonical order, and names in one form: a named type's short `name`, with a `namespace` only where
 * it differs from the enclosing one (`""` for the null namespace), and references by short name within their
 * namespace, by full name elsewhere. `fullName` is the root's full name when it is a named type defined inside
 * another (its namespace then comes from there). This is what the registry backend registers: avsc's
 * `Type#schema()` drops `logicalType` on primitives.
 */
export const writtenOut = (
  schema: unknown,
  named: ReadonlyMap<string, Named>,
  fullName?: string | undefined
): unknown => {
  const defined = new Set<string>()
  type Def = { readonly [key: string]: unknown }

  const namedType = (def: Def, full: string, enclosing: string | undefined): Def => {
    defined.add(full)
    const own = namespaceOf(full)
    const { namespace: _namespace, ...rest } = def
    const out: { [key: string]: unknown } = { ...rest, name: full.slice(full.lastIndexOf(".") + 1) }
    if (own !== enclosing) out.namespace = own ?? ""
    if (Array.isArray(def.fields)) {
      out.fields = (def.fields as ReadonlyArray<Def>).map((f) => ordered({ ...f, type: walk(f.type, own) }))
    }
    return ordered(out)
  }

  /** A reference to a type written out before: its short name within its namespace, else its full name. */
  const reference = (full: string, enclosing: string | undefined): string =>
    enclosing !== undefined && namespaceOf(full) === enclosing ? full.slice(enclosing.length + 1) : full

  const walk = (node: unknown, enclosing: string | undefined): unknown => {
    if (typeof node === "string") {
      if (primitives.has(node)) return node
      const found = lookup(node, enclosing, named)
      if (found === undefined) return node
      if (defined.has(found.fullName)) return reference(found.fullName, enclosing)
      return namedType(found.json, found.fullName, enclosing)
    }
    if (Array.isArray(node)) return node.map((branch) => walk(branch, enclosing))
    if (typeof node !== "object" || node === null) return node
    const def = node as Def
    const type = def.type
    if (type === "record" || type === "error" || type === "enum" || type === "fixed") {
      return namedType(def, fullNameOf(def, enclosing), enclosing)
    }
    if (type === "array") return ordered({ ...def, items: walk(def.items, enclosing) })
    if (type === "map") return ordered({ ...def, values: walk(def.values, enclosing) })
    if (typeof type === "string" && !primitives.has(type)) {
      // `{ "type": "Name" }`, a reference in object form: the named type itself when nothing else is said
      return Object.keys(def).length === 1 ? walk(type, enclosing) : ordered({ ...def, type: walk(type, enclosing) })
    }
    if (typeof type === "object" && type !== null) return ordered({ ...def, type: walk(type, enclosing) })
    return ordered(def)
  }

  if (fullName !== undefined && typeof schema === "object" && schema !== null && !Array.isArray(schema)) {
    const type = (schema as Def).type
    if (type === "record" || type === "error" || type === "enum" || type === "fixed") {
      return namedType(schema as Def, fullName, undefined)
    }
  }
  return walk(schema, undefined)
}

/** Resolves a type reference (a name) against known named types. */
export const resolve = (
  type: unknown,
  enclosing: string | undefined,
  named: ReadonlyMap<string, Named>
): { readonly json: unknown; readonly namespace: string | undefined } => {
  if (typeof type === "string" && !primitives.has(type)) {
    const candidates = type.includes(".") ? [type] : [enclosing === undefined ? type : `${enclosing}.${type}`, type]
    for (const c of candidates) {
      const found = named.get(c)
      if (found !== undefined) return { json: found.json, namespace: namespaceOf(found.fullName) }
    }
  }
  if (typeof type === "object" && type !== null && !Array.isArray(type)) {
    const def = type as { readonly type?: unknown; readonly name?: unknown }
    if (
      (def.type === "record" || def.type === "enum" || def.type === "fixed" || def.type === "error") &&
      def.name !== undefined
    ) {
      return { json: type, namespace: namespaceOf(fullNameOf(def, enclosing)) }
    }
  }
  return { json: type, namespace: enclosing }
}

/** The named definition or primitive/complex definition a type stands for, with its full name when named. */
const definitionOf = (
  type: unknown,
  enclosing: string | undefined,
  named: ReadonlyMap<string, Named>
): { readonly kind: string; readonly fullName: string | undefined } => {
  const { json, namespace } = resolve(type, enclosing, named)
  if (typeof json === "string") return { kind: json, fullName: undefined }
  if (Array.isArray(json)) return { kind: "union", fullName: undefined }
  const def = json as { readonly type?: unknown; readonly name?: unknown }
  if (typeof def.type === "object" && def.type !== null) return definitionOf(def.type, namespace, named)
  const kind = String(def.type)
  return kind === "record" || kind === "error" || kind === "enum" || kind === "fixed"
    ? { kind, fullName: fullNameOf(def, enclosing) }
    : { kind, fullName: undefined }
}

const buckets: { readonly [kind: string]: string } = {
  int: "number",
  long: "number",
  float: "number",
  double: "number",
  bytes: "buffer",
  fixed: "buffer",
  enum: "string",
  map: "object",
  record: "object",
  error: "object"
}

/**
 * The name avsc gives a union branch in a wrapped union (`{ "<name>": value }`): the full name of a named type, else
 * the type's name (`string`, `long` also for logical types, since no logical type is registered, `array`, `map`).
 */
export const branchNameOf = (type: unknown, enclosing: string | undefined, named: ReadonlyMap<string, Named>) => {
  const { fullName, kind } = definitionOf(type, enclosing, named)
  return fullName ?? kind
}

/**
 * Does avsc represent this union wrapped? It does (with its default `wrapUnions: "auto"`) when two branches fall in
 * one bucket of JavaScript values: numbers (int, long, float, double), strings (string, enum), buffers (bytes,
 * fixed), objects (record, map), arrays, booleans, null. Two records, or a string and an enum, are wrapped; a null
 * and a record, or a string and a long, are not.
 */
export const isWrappedUnion = (
  branches: ReadonlyArray<unknown>,
  enclosing: string | undefined,
  named: ReadonlyMap<string, Named>
): boolean => {
  const seen = new Set<string>()
  for (const b of branches) {
    const { kind } = definitionOf(b, enclosing, named)
    const bucket = buckets[kind] ?? kind
    if (seen.has(bucket)) return true
    seen.add(bucket)
  }
  return false
}
