/**
 * Avro schema compatibility, by Avro's schema-resolution rules (reader/writer): avsc's `createResolver` throws
 * exactly when a reader cannot read a writer's data (missing field without default, enum symbol the reader lacks,
 * no type promotion, no matching union branch, names that differ).
 */
import avro from "avsc"

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

/** Parses an Avro schema, or returns the parse error's message. */
export const parse = (schema: string): avro.Type | string => {
  try {
    return avro.Type.forSchema(JSON.parse(schema) as avro.Schema, { wrapUnions: false })
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  }
}

/** Can `reader` read what `writer` wrote? Returns the reason when not. */
export const canRead = (reader: avro.Type, writer: avro.Type): string | undefined => {
  try {
    reader.createResolver(writer)
    return undefined
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  }
}

/**
 * Checks `candidate` against the existing versions (oldest first) under `level`. Returns the reasons it is
 * incompatible, empty when compatible.
 */
export const check = (
  level: Level,
  candidate: avro.Type,
  existing: ReadonlyArray<avro.Type>
): ReadonlyArray<string> => {
  if (level === "NONE" || existing.length === 0) return []
  const against = level.endsWith("_TRANSITIVE") ? existing : existing.slice(-1)
  const backward = level.startsWith("BACKWARD") || level.startsWith("FULL")
  const forward = level.startsWith("FORWARD") || level.startsWith("FULL")
  const problems: Array<string> = []
  for (const old of against) {
    if (backward) {
      const why = canRead(candidate, old)
      if (why !== undefined) problems.push(`the new schema cannot read data written with an existing one: ${why}`)
    }
    if (forward) {
      const why = canRead(old, candidate)
      if (why !== undefined) problems.push(`an existing schema cannot read data written with the new one: ${why}`)
    }
  }
  return problems
}
