/**
 * Errors of the database, mapped at the edge from the driver's (postgres.js, PGlite, drizzle's wrapper): a `reason`,
 * the Postgres error code when there is one, whether trying again may help, and the driver's error as `cause`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * Why a query or transaction failed.
 * - `Connection`: the connection could not be made or was lost (a restart, `pg_terminate_backend`). Retriable.
 * - `Serialization`: a serializable transaction conflicted (40001). Retriable.
 * - `Deadlock`: Postgres broke a deadlock by failing this transaction (40P01). Retriable.
 * - `Timeout`: a statement or lock timeout, or a query cancelled (57014, 55P03). Retriable.
 * - `Constraint`: a unique, foreign-key, not-null or check constraint refused the write (23xxx).
 * - `Query`: anything else the server refused (a syntax error, an unknown table, a bad value).
 *
 * @since 0.1.0
 */
export type Reason = "Connection" | "Serialization" | "Deadlock" | "Timeout" | "Constraint" | "Query"

/**
 * @since 0.1.0
 */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly reason: Reason
  readonly message: string
  /** Whether trying again may help (a lost connection, a serialization failure, a deadlock, a timeout). */
  readonly retriable: boolean
  /** The Postgres error code (SQLSTATE), e.g. `23505`, when the server answered one. */
  readonly code?: string | undefined
  /** The constraint that refused the write, for `Constraint` errors. */
  readonly constraint?: string | undefined
  readonly cause?: unknown
}> {}

interface DriverError {
  readonly code?: unknown
  readonly message?: unknown
  readonly constraint_name?: unknown
  readonly constraint?: unknown
  readonly detail?: unknown
  readonly cause?: unknown
}

/** The driver errors of a cause chain, outermost first (drizzle wraps the driver's error). */
const chainOf = (error: unknown): ReadonlyArray<DriverError> => {
  const chain: Array<DriverError> = []
  let current = error as DriverError | undefined
  while (current !== undefined && current !== null && typeof current === "object" && chain.length < 6) {
    chain.push(current)
    current = current.cause as DriverError | undefined
  }
  return chain
}

/** postgres.js's own codes for connections it could not make or lost. */
const connectionCodes = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND"
])

/** The reason of a SQLSTATE or driver code. */
export const reasonOf = (code: string | undefined): Reason => {
  if (code === undefined) return "Query"
  if (connectionCodes.has(code) || code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03") {
    return "Connection"
  }
  if (code === "40001") return "Serialization"
  if (code === "40P01") return "Deadlock"
  if (code === "57014" || code === "55P03") return "Timeout"
  if (code.startsWith("23")) return "Constraint"
  return "Query"
}

const retriableReasons: ReadonlySet<Reason> = new Set(["Connection", "Serialization", "Deadlock", "Timeout"])

/**
 * Maps anything a driver threw; `context` says what was being done.
 *
 * @since 0.1.0
 */
export const fromUnknown = (context: string) => (error: unknown): DatabaseError => {
  if (error instanceof DatabaseError) return error
  const chain = chainOf(error)
  const withCode = chain.find((e) => typeof e.code === "string")
  const code = withCode?.code as string | undefined
  const reason = reasonOf(code)
  const driver = withCode ?? chain[chain.length - 1]
  const detail = typeof driver?.message === "string" ? driver.message : String(error)
  const constraint = typeof driver?.constraint_name === "string"
    ? driver.constraint_name
    : typeof driver?.constraint === "string"
    ? driver.constraint
    : undefined
  return new DatabaseError({
    reason,
    retriable: retriableReasons.has(reason),
    code,
    constraint,
    message: `${context}: ${detail}${code === undefined ? "" : ` (${code})`}`,
    cause: error
  })
}
