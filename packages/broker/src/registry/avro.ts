/**
 * Avro schemas as the registry sees them: validated by avsc, resolved into a tree of named types (what the
 * compatibility rules walk) and written in one canonical JSON form (what decides "same schema → same id").
 *
 * The canonical form keeps everything that changes meaning or documentation (logical types, defaults, docs,
 * aliases, custom attributes), qualifies every name in full, references a named type by name after its first
 * definition, and orders object keys, so whitespace, key order and `namespace` + `name` vs. a full name do not
 * matter. avsc's own `Type#schema()` is not used for this: it drops `logicalType` unless a logical type
 * implementation is registered.
 */
import avro from "avsc"
import * as Either from "effect/Either"

/** An Avro primitive type name. */
export type Primitive = "null" | "boolean" | "int" | "long" | "float" | "double" | "bytes" | "string"

const primitives: ReadonlySet<string> = new Set<Primitive>([
  "null",
  "boolean",
  "int",
  "long",
  "float",
  "double",
  "bytes",
  "string"
])

/** A record field: its type and whether it has a default (which lets a reader do without it). */
export interface Field {
  readonly name: string
  readonly aliases: ReadonlyArray<string>
  readonly type: Node
  readonly hasDefault: boolean
}

/** A resolved Avro type. Named types carry their full name; recursive records refer to themselves. */
export type Node =
  | { readonly kind: "primitive"; readonly type: Primitive }
  | {
    readonly kind: "record"
    readonly name: string
    readonly aliases: ReadonlyArray<string>
    readonly fields: ReadonlyArray<Field>
  }
  | {
    readonly kind: "enum"
    readonly name: string
    readonly aliases: ReadonlyArray<string>
    readonly symbols: ReadonlyArray<string>
    readonly default: string | undefined
  }
  | { readonly kind: "fixed"; readonly name: string; readonly aliases: ReadonlyArray<string>; readonly size: number }
  | { readonly kind: "array"; readonly items: Node }
  | { readonly kind: "map"; readonly values: Node }
  | { readonly kind: "union"; readonly branches: ReadonlyArray<Node> }

/** A valid schema: its tree and its canonical text. */
export interface Parsed {
  readonly node: Node
  readonly canonical: string
}

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/**
 * How large a schema may be. Checked before avsc and the walk below see it: both recurse per nesting level (too
 * deep overflows the stack) and avsc compiles a record's fields into one function (65,534 parameters at most).
 */
export interface Limits {
  /** UTF-8 bytes of the schema text. */
  readonly maxBytes: number
  /** Nesting of JSON objects and arrays: `"int"` is 0, `{"type": "int"}` is 1. */
  readonly maxDepth: number
  /** Fields of all records together. */
  readonly maxFields: number
}

/** For schemas already accepted (read back from the data file). */
export const unlimited: Limits = { maxBytes: Infinity, maxDepth: Infinity, maxFields: Infinity }

/** Which limit the parsed JSON passes, if any; iterative, so any depth is measured without recursing. */
const aboveLimits = (json: Json, limits: Limits): string | undefined => {
  let fields = 0
  const stack: Array<readonly [Json, number]> = [[json, 0]]
  while (stack.length > 0) {
    const [value, above] = stack.pop()!
    if (value === null || typeof value !== "object") continue
    if (above + 1 > limits.maxDepth) {
      return `the schema nests JSON objects and arrays deeper than ${limits.maxDepth} levels (maxSchemaDepth)`
    }
    if (Array.isArray(value)) {
      for (const item of value) stack.push([item, above + 1])
      continue
    }
    const object = value as { readonly [key: string]: Json }
    if ((object.type === "record" || object.type === "error") && Array.isArray(object.fields)) {
      fields += object.fields.length
    }
    for (const key in object) stack.push([object[key]!, above + 1])
  }
  return fields > limits.maxFields
    ? `the schema has ${fields} record fields, above the limit of ${limits.maxFields} (maxSchemaFields)`
    : undefined
}

/**
 * Parses and validates a schema given as JSON text. Fails with a message saying what is wrong (a limit passed,
 * invalid JSON, an unknown type, a bad default, a duplicate name...).
 */
export const parse = (text: string, limits: Limits = unlimited): Either.Either<Parsed, string> => {
  const bytes = Buffer.byteLength(text)
  if (bytes > limits.maxBytes) {
    return Either.left(`the schema is ${bytes} bytes, above the limit of ${limits.maxBytes} bytes (maxSchemaBytes)`)
  }
  let json: Json
  try {
    json = JSON.parse(text) as Json
  } catch (error) {
    return Either.left(`the schema is not JSON (${messageOf(error)})`)
  }
  const above = aboveLimits(json, limits)
  if (above !== undefined) return Either.left(above)
  try {
    // Validation only. wrapUnions: with the default ("auto"), avsc refuses valid unions such as ["int", "long"]
    // or two records, which it could not tell apart as plain JavaScript values.
    avro.Type.forSchema(json as avro.Schema, { wrapUnions: true })
  } catch (error) {
    return Either.left(messageOf(error))
  }
  try {
    const named = new Map<string, Node>()
    const [node, canonical] = walk(json, "", named)
    return Either.right({ node, canonical: JSON.stringify(canonical) })
  } catch (error) {
    return Either.left(messageOf(error))
  }
}

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

const qualify = (name: string, namespace: string): string =>
  name.includes(".") || namespace === "" ? name : `${namespace}.${name}`

const namespaceOf = (fullName: string): string => {
  const dot = fullName.lastIndexOf(".")
  return dot < 0 ? "" : fullName.slice(0, dot)
}

/** Object keys in a fixed order: `type` and `name` first, then the rest alphabetically; nested values too. */
const sortKeys = (value: Json): Json => {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value === null || typeof value !== "object") return value
  const object = value as { readonly [key: string]: Json }
  const first = ["type", "name"].filter((k) => k in object)
  const rest = Object.keys(object).filter((k) => k !== "type" && k !== "name").sort()
  return Object.fromEntries([...first, ...rest].map((k) => [k, sortKeys(object[k]!)]))
}

/** Attributes other than the ones the walk handles itself, kept in the canonical form. */
const otherAttributes = (
  object: { readonly [key: string]: Json },
  handled: ReadonlyArray<string>
): Record<string, Json> =>
  Object.fromEntries(Object.entries(object).filter(([k]) => !handled.includes(k)).map(([k, v]) => [k, sortKeys(v)]))

const stringArray = (value: Json | undefined): ReadonlyArray<string> =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : []

/** Resolves one schema into its node and its canonical JSON, under the enclosing namespace. */
const walk = (
  schema: Json,
  namespace: string,
  named: Map<string, Node>
): readonly [Node, Json] => {
  if (typeof schema === "string") {
    if (primitives.has(schema)) return [{ kind: "primitive", type: schema as Primitive }, schema]
    const fullName = named.has(qualify(schema, namespace)) ? qualify(schema, namespace) : schema
    const node = named.get(fullName)
    if (node === undefined) throw new Error(`unknown type: ${schema}`)
    return [node, fullName]
  }
  if (Array.isArray(schema)) {
    const branches = schema.map((branch: Json) => walk(branch, namespace, named))
    return [{ kind: "union", branches: branches.map(([n]) => n) }, branches.map(([, c]) => c)]
  }
  if (schema === null || typeof schema !== "object") throw new Error(`not a schema: ${JSON.stringify(schema)}`)
  const object = schema as { readonly [key: string]: Json }
  const type = object.type
  if (typeof type !== "string") {
    // `{"type": {...}}` or `{"type": [...]}`: the inner schema is the type.
    return walk(type ?? null, namespace, named)
  }
  switch (type) {
    case "record":
    case "error":
    case "enum":
    case "fixed":
      return walkNamed(object, type, namespace, named)
    case "array": {
      const [items, canonical] = walk(object.items ?? null, namespace, named)
      return [
        { kind: "array", items },
        sortKeys({ ...otherAttributes(object, ["type", "items"]), type: "array", items: canonical })
      ]
    }
    case "map": {
      const [values, canonical] = walk(object.values ?? null, namespace, named)
      return [
        { kind: "map", values },
        sortKeys({ ...otherAttributes(object, ["type", "values"]), type: "map", values: canonical })
      ]
    }
    default: {
      const attributes = otherAttributes(object, ["type"])
      if (primitives.has(type)) {
        const node: Node = { kind: "primitive", type: type as Primitive }
        return [node, Object.keys(attributes).length === 0 ? type : sortKeys({ ...attributes, type })]
      }
      // `{"type": "ns.Name"}`: a reference in object form.
      return walk(type, namespace, named)
    }
  }
}

const walkNamed = (
  object: { readonly [key: string]: Json },
  type: "record" | "error" | "enum" | "fixed",
  namespace: string,
  named: Map<string, Node>
): readonly [Node, Json] => {
  const declared = typeof object.namespace === "string" ? object.namespace : namespace
  const fullName = qualify(String(object.name), declared)
  const inner = namespaceOf(fullName)
  const aliases = stringArray(object.aliases).map((a) => qualify(a, inner))
  const head: Record<string, Json> = {
    ...otherAttributes(object, ["type", "name", "namespace", "aliases", "fields", "symbols", "size"]),
    type,
    name: fullName,
    ...(aliases.length > 0 ? { aliases } : {}),
    // A name without namespace inside a namespaced parent would otherwise inherit the parent's namespace.
    ...(inner === "" && namespace !== "" ? { namespace: "" } : {})
  }
  if (type === "enum") {
    const node: Node = {
      kind: "enum",
      name: fullName,
      aliases,
      symbols: stringArray(object.symbols),
      default: typeof object.default === "string" ? object.default : undefined
    }
    named.set(fullName, node)
    return [node, sortKeys({ ...head, symbols: node.symbols })]
  }
  if (type === "fixed") {
    const node: Node = { kind: "fixed", name: fullName, aliases, size: Number(object.size) }
    named.set(fullName, node)
    return [node, sortKeys({ ...head, size: node.size })]
  }
  // Registered before its fields are walked, so a recursive reference finds it.
  const fields: Array<Field> = []
  const node: Node = { kind: "record", name: fullName, aliases, fields }
  named.set(fullName, node)
  const canonicalFields: Array<Json> = []
  for (const field of Array.isArray(object.fields) ? object.fields : []) {
    const f = field as { readonly [key: string]: Json }
    const [fieldType, canonicalType] = walk(f.type ?? null, inner, named)
    const name = String(f.name)
    fields.push({ name, aliases: stringArray(f.aliases), type: fieldType, hasDefault: "default" in f })
    const rest = sortKeys(otherAttributes(f, ["name", "type"])) as Record<string, Json>
    canonicalFields.push({ name, type: canonicalType, ...rest })
  }
  return [node, { ...sortKeys(head) as Record<string, Json>, fields: canonicalFields }]
}
