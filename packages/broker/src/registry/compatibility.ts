/**
 * Avro schema compatibility by the schema-resolution rules of the Avro specification (the checks Confluent runs
 * through Avro's `SchemaCompatibility`): can a reader schema read data written with a writer schema?
 *
 * - records match fields by name (then by the reader field's aliases); a reader field missing from the writer
 *   needs a default; writer fields the reader lacks are skipped;
 * - promotions: int → long, float, double; long → float, double; float → double; string ↔ bytes;
 * - enums: every writer symbol must be a reader symbol, unless the reader has a default;
 * - fixed: same size; arrays and maps: their items / values;
 * - named types match by unqualified name or by a reader alias of the writer's full name;
 * - a writer union: every branch must be readable; a reader union: some branch must read the writer.
 *
 * avsc's `createResolver` is close but not used: it compares full names (a namespace change is incompatible
 * there, not in Avro's rules) and gives no location.
 */
import type { Node } from "./avro.js"

/** A compatibility level, as Confluent names them. */
export type Level =
  | "NONE"
  | "BACKWARD"
  | "BACKWARD_TRANSITIVE"
  | "FORWARD"
  | "FORWARD_TRANSITIVE"
  | "FULL"
  | "FULL_TRANSITIVE"

export const levels: ReadonlyArray<Level> = [
  "NONE",
  "BACKWARD",
  "BACKWARD_TRANSITIVE",
  "FORWARD",
  "FORWARD_TRANSITIVE",
  "FULL",
  "FULL_TRANSITIVE"
]

export const isLevel = (u: unknown): u is Level =>
  typeof u === "string" && (levels as ReadonlyArray<string>).includes(u)

/** Why a reader cannot read a writer's data, where (a path in the reader schema). */
export interface Incompatibility {
  readonly type:
    | "NAME_MISMATCH"
    | "TYPE_MISMATCH"
    | "READER_FIELD_MISSING_DEFAULT_VALUE"
    | "MISSING_ENUM_SYMBOLS"
    | "FIXED_SIZE_MISMATCH"
    | "MISSING_UNION_BRANCH"
  readonly location: string
  readonly message: string
}

const promotions: Readonly<Record<string, ReadonlyArray<string>>> = {
  int: ["long", "float", "double"],
  long: ["float", "double"],
  float: ["double"],
  string: ["bytes"],
  bytes: ["string"]
}

const describe = (node: Node): string =>
  node.kind === "primitive"
    ? node.type
    : node.kind === "record" || node.kind === "enum" || node.kind === "fixed"
    ? `${node.kind} ${node.name}`
    : node.kind

const unqualified = (name: string): string => name.slice(name.lastIndexOf(".") + 1)

const sameName = (
  reader: { readonly name: string; readonly aliases: ReadonlyArray<string> },
  writer: { readonly name: string }
): boolean => unqualified(reader.name) === unqualified(writer.name) || reader.aliases.includes(writer.name)

/** The reasons `reader` cannot read data written with `writer`; empty when it can. */
export const canRead = (reader: Node, writer: Node): ReadonlyArray<Incompatibility> => go(reader, writer, "", new Map())

const go = (
  reader: Node,
  writer: Node,
  location: string,
  inProgress: Map<Node, Set<Node>>
): ReadonlyArray<Incompatibility> => {
  // Recursive named types: a pair already being checked is assumed compatible (its other parts decide).
  const seen = inProgress.get(reader)
  if (seen?.has(writer)) return []
  if (seen === undefined) inProgress.set(reader, new Set([writer]))
  else seen.add(writer)
  try {
    return resolve(reader, writer, location, inProgress)
  } finally {
    inProgress.get(reader)?.delete(writer)
  }
}

const resolve = (
  reader: Node,
  writer: Node,
  location: string,
  inProgress: Map<Node, Set<Node>>
): ReadonlyArray<Incompatibility> => {
  const at = location === "" ? "/" : location
  const fail = (type: Incompatibility["type"], message: string): ReadonlyArray<Incompatibility> => [
    { type, location: at, message }
  ]
  if (writer.kind === "union") {
    return writer.branches.flatMap((branch) => go(reader, branch, location, inProgress))
  }
  if (reader.kind === "union") {
    const readable = reader.branches.some((branch) => go(branch, writer, location, inProgress).length === 0)
    return readable ? [] : fail(
      "MISSING_UNION_BRANCH",
      `the reader union has no branch that can read ${describe(writer)}`
    )
  }
  switch (reader.kind) {
    case "primitive": {
      if (writer.kind !== "primitive") break
      if (reader.type === writer.type || promotions[writer.type]?.includes(reader.type) === true) return []
      break
    }
    case "record": {
      if (writer.kind !== "record") break
      if (!sameName(reader, writer)) {
        return fail("NAME_MISMATCH", `expected ${writer.name}, found ${reader.name}`)
      }
      return reader.fields.flatMap((field) => {
        const written = writer.fields.find((w) => w.name === field.name) ??
          writer.fields.find((w) => field.aliases.includes(w.name))
        const path = `${location}/fields/${field.name}`
        if (written !== undefined) return go(field.type, written.type, path, inProgress)
        return field.hasDefault ? [] : [{
          type: "READER_FIELD_MISSING_DEFAULT_VALUE" as const,
          location: path,
          message: `${reader.name}.${field.name} is not written by the writer schema and has no default`
        }]
      })
    }
    case "enum": {
      if (writer.kind !== "enum") break
      if (!sameName(reader, writer)) {
        return fail("NAME_MISMATCH", `expected ${writer.name}, found ${reader.name}`)
      }
      const missing = writer.symbols.filter((s) => !reader.symbols.includes(s))
      return missing.length === 0 || reader.default !== undefined ? [] : fail(
        "MISSING_ENUM_SYMBOLS",
        `${reader.name} lacks the writer's symbols ${missing.join(", ")} and has no default`
      )
    }
    case "fixed": {
      if (writer.kind !== "fixed") break
      if (!sameName(reader, writer)) {
        return fail("NAME_MISMATCH", `expected ${writer.name}, found ${reader.name}`)
      }
      return reader.size === writer.size ? [] : fail(
        "FIXED_SIZE_MISMATCH",
        `${reader.name} has size ${reader.size}, the writer's ${writer.size}`
      )
    }
    case "array": {
      if (writer.kind !== "array") break
      return go(reader.items, writer.items, `${location}/items`, inProgress)
    }
    case "map": {
      if (writer.kind !== "map") break
      return go(reader.values, writer.values, `${location}/values`, inProgress)
    }
  }
  return fail("TYPE_MISMATCH", `reader type ${describe(reader)} cannot read writer type ${describe(writer)}`)
}

/**
 * Checks a candidate schema against a subject's existing schemas (oldest first) under `level`: BACKWARD, the
 * candidate reads data written with the latest; FORWARD, the latest reads the candidate's data; FULL, both; the
 * `_TRANSITIVE` forms check every existing schema, not only the latest. Returns readable reasons, empty when
 * compatible.
 */
export const check = (
  level: Level,
  candidate: Node,
  existing: ReadonlyArray<Node>
): ReadonlyArray<string> => {
  if (level === "NONE") return []
  const against = level.endsWith("_TRANSITIVE") ? existing : existing.slice(-1)
  const backward = level.startsWith("BACKWARD") || level.startsWith("FULL")
  const forward = level.startsWith("FORWARD") || level.startsWith("FULL")
  const explain = (direction: string, found: ReadonlyArray<Incompatibility>) =>
    found.map((i) => `${direction}: ${i.type} at ${i.location}: ${i.message}`)
  return against.flatMap((old) => [
    ...(backward
      ? explain("the new schema cannot read data written with an earlier one", canRead(candidate, old))
      : []),
    ...(forward ? explain("an earlier schema cannot read data written with the new one", canRead(old, candidate)) : [])
  ])
}
