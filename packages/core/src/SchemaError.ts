/**
 * Errors of schema backends: validation, encoding, decoding, unknown schemas, registry failures.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * One problem found in a payload, located by its field path.
 *
 * @since 0.1.0
 */
export interface Issue {
  readonly path: ReadonlyArray<string | number>
  readonly message: string
}

/**
 * Why a schema operation failed.
 * - `Validation`: the payload does not match the schema (see `issues`).
 * - `Encode` / `Decode`: bytes could not be produced or read.
 * - `UnknownSchema`: the schema could not be found.
 * - `Registry`: the schema registry failed (see `retriable`).
 * - `Key`: the key could not be encoded or decoded.
 *
 * @since 0.1.0
 */
export type Reason = "Validation" | "Encode" | "Decode" | "UnknownSchema" | "Registry" | "Key"

/**
 * @since 0.1.0
 */
export class SchemaError extends Data.TaggedError("SchemaError")<{
  readonly reason: Reason
  readonly message: string
  readonly schema?: string | undefined
  readonly topic?: string | undefined
  readonly issues?: ReadonlyArray<Issue> | undefined
  readonly retriable?: boolean | undefined
  readonly cause?: unknown
}> {}

/**
 * Formats a field path as `a.b[0].c`.
 *
 * @since 0.1.0
 */
export const formatPath = (path: ReadonlyArray<string | number>): string =>
  path.length === 0
    ? "(root)"
    : path.map((p, i) => typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`).join("")

/**
 * A validation error listing every issue with its field path.
 *
 * @since 0.1.0
 */
export const validation = (options: {
  readonly schema: string
  readonly issues: ReadonlyArray<Issue>
  readonly topic?: string | undefined
  readonly cause?: unknown
}): SchemaError =>
  new SchemaError({
    reason: "Validation",
    schema: options.schema,
    topic: options.topic,
    issues: options.issues,
    cause: options.cause,
    message: `Payload does not match schema ${options.schema}: ${
      options.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join("; ")
    }`
  })
