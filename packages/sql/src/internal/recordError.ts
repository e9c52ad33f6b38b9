/**
 * The error of record consumers (re-exported by `RecordConsumer`).
 */
import * as Data from "effect/Data"
import type { DatabaseError } from "../DatabaseError.js"
import type { Row } from "./recordTable.js"

/** A key that could not be saved, and why. */
export interface Failure {
  /** The key columns of the record (as much of them as is known). */
  readonly key: Row
  readonly error: RecordConsumerError | DatabaseError
}

/** Why a record could not be written. */
export type Reason = "Attributes" | "Key" | "Rows"

export class RecordConsumerError extends Data.TaggedError("RecordConsumerError")<{
  readonly reason: Reason
  readonly message: string
  readonly consumer: string
  /** The table, `schema.table`. */
  readonly table: string
  /** The column at fault, for `Attributes` and `Key` errors (its property name). */
  readonly column?: string | undefined
  /** The record's key, when known. */
  readonly key?: Row | undefined
  /** The keys a batch could not save, for `Rows` errors. */
  readonly failures?: ReadonlyArray<Failure> | undefined
  readonly cause?: unknown
}> {}
