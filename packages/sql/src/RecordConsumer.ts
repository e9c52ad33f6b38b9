/**
 * Record consumers: a consumer definition bound to a drizzle table, which upserts each message into the table by its
 * key and deletes the key's row on a tombstone (Deimos's ActiveRecordConsumer).
 *
 * - *Message mode* (`delivery: "message"` or `"batch"`): per message, `processMessage` may skip it; a tombstone
 *   deletes the key's row (a missing row is no error); anything else is upserted.
 * - *Batch mode* (`delivery: "inlineBatch"`): per batch, in one transaction (the ambient one of `Database`, so
 *   what the hooks write joins it): `preProcess`, then the last message per key (`compacted`, the default) or slices
 *   in which each key occurs once, in order; per slice the tombstones' rows deleted in one statement and the rest
 *   upserted with `INSERT … ON CONFLICT (key columns) DO UPDATE`, `maxDbBatchSize` rows a statement;
 *   `shouldConsume` may reject records; `postProcessBatch` gets what was saved and rejected.
 *
 * A row is the message's attributes (by default the payload's fields that are columns of the table, with integer
 * timestamps turned into `Date`s for timestamp columns) and its key columns (from the message key), with
 * `created_at` / `updated_at` set when the table has them. Rows are checked against the table's columns before they
 * are written: an attribute that is not a column, a value of the wrong type, a required column without a value is a
 * `RecordConsumerError` naming the column.
 *
 * Deadlocks, serialization failures and lost connections are retried (`maxRetries`, jittered exponential backoff;
 * `deadlock{topic}` counts deadlocks and serialization failures). A batch whose write the database refuses otherwise
 * (a constraint, a bad value) is written again row by row (each in a savepoint): the rows that can be saved are, and
 * the batch ends with a `RecordConsumerError` (reason `Rows`) listing the keys that could not, for the consumer's
 * error policy.
 *
 * @since 0.1.0
 */
import type { ErrorPolicy, KeyConfig, SchemaBackend, SchemaRef, Tombstone } from "@deimos/core"
import { Consumer } from "@deimos/core"
import type { SQL } from "drizzle-orm"
import type { PgTable } from "drizzle-orm/pg-core"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Metric from "effect/Metric"
import type { Database } from "./Database.js"
import type { DatabaseError } from "./DatabaseError.js"
import * as internal from "./internal/record.js"
import * as internalError from "./internal/recordError.js"
import type { Row as InternalRow } from "./internal/recordTable.js"

/**
 * A row by the table's property names (what drizzle's `insert(table).values(row)` takes).
 *
 * @since 0.1.0
 */
export type Row = InternalRow

/**
 * A key that could not be saved, and why.
 *
 * @since 0.1.0
 */
export type Failure = internalError.Failure

/**
 * Why a record could not be written.
 * - `Attributes`: a row does not fit the table (an attribute that is not a column, a value of the wrong type, a
 *   required column without a value); `column` names the column.
 * - `Key`: the record's key columns cannot be found (from the message key, or in the attributes).
 * - `Rows`: a batch was saved without some of its records; `failures` lists their keys and errors.
 *
 * @since 0.1.0
 */
export type Reason = internalError.Reason

/**
 * A record that does not fit its table, or a batch saved without some of its records (`reason`), naming the table,
 * the column or the keys.
 *
 * @since 0.1.0
 */
export const RecordConsumerError: typeof internalError.RecordConsumerError = internalError.RecordConsumerError

/**
 * @since 0.1.0
 */
export type RecordConsumerError = internalError.RecordConsumerError

/**
 * A message as batch-mode hooks see it.
 *
 * @since 0.1.0
 */
export interface Message<A, K> {
  readonly key: K | null
  /** The payload, or a `Tombstone` of the key. */
  readonly payload: A | Tombstone.Tombstone<K>
  readonly offset: string
  readonly headers: Readonly<Record<string, string>>
}

/**
 * A child table written with each record: `rows(payload, record)` are its rows for the record, each with
 * `foreignKey` set to the record's `references` column (by default the table's single key column; a column the
 * database makes, such as a serial id, is read back through the `bulkImportIdColumn`). The child rows are checked
 * against their table like records are, and a bad one fails its record.
 *
 * @since 0.1.0
 */
export interface Association<A> {
  readonly table: PgTable
  /** The child's column (property or SQL name) pointing to the record. */
  readonly foreignKey: string
  /** The record's column the foreign key holds. @default the table's key column, when it has one */
  readonly references?: string | undefined
  /** The child's key columns, for `replaceAssociations: false`. @default its primary key */
  readonly keyColumns?: ReadonlyArray<string> | undefined
  readonly rows: (payload: A, record: Row) => ReadonlyArray<Row>
}

/**
 * What a batch did, for `postProcessBatch`.
 *
 * @since 0.1.0
 */
export interface BatchResult<A, K> {
  /** The rows upserted (as written, without the timestamps set by the database). */
  readonly saved: ReadonlyArray<Row>
  /** The records `shouldConsume` refused, with their messages. */
  readonly rejected: ReadonlyArray<{ readonly record: Row; readonly message: Message<A, K> }>
  /** The keys deleted by tombstones. */
  readonly deleted: ReadonlyArray<Row>
  /** The records that could not be saved (the batch ends with a `Rows` error after the hook). */
  readonly failed: ReadonlyArray<Failure>
}

/**
 * The errors a record consumer's handler fails with, besides its hooks' own.
 *
 * @since 0.1.0
 */
export type Error = RecordConsumerError | DatabaseError

/**
 * An effect or a plain value, for hooks that may or may not need one.
 *
 * @since 0.1.0
 */
export type OrEffect<A, E, R> = A | Effect.Effect<A, E, R>

/**
 * @since 0.1.0
 */
export declare namespace RecordConsumer {
  /**
   * What both modes take.
   *
   * @since 0.1.0
   */
  export interface BaseOptions<
    S extends SchemaRef.Any,
    KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
    E,
    Tags extends string
  > extends Omit<Consumer.Consumer.BaseOptions<S, KC, true>, "tombstones"> {
    /** The table records are written to. */
    readonly table: PgTable
    /** The columns (property or SQL names) records are upserted and deleted by. @default the primary key */
    readonly keyColumns?: ReadonlyArray<string> | undefined
    /**
     * The key columns of a message key. @default a key object's key columns, or `{ [keyColumn]: key }` for a scalar
     * key and one key column
     */
    readonly recordKey?: ((key: KeyConfig.KeyOf<SchemaRef.Type<S>, KC>) => Row) | undefined
    /**
     * The row of a payload (the key columns are added from the key). `defaults()` is the default: the fields both the
     * schema (`SchemaBackend.fields`) and the table have, but `created_at` / `updated_at`, integer timestamps as
     * `Date`s (millis or micros by the field's logical type, seconds without one) in timestamp columns.
     */
    readonly recordAttributes?:
      | ((
        payload: SchemaRef.Type<S>,
        key: KeyConfig.KeyOf<SchemaRef.Type<S>, KC> | null,
        defaults: () => Row
      ) => Row)
      | undefined
    /** Child tables written with each record, in its transaction (Deimos 2.x's association writes). */
    readonly associations?: ReadonlyArray<Association<SchemaRef.Type<S>>> | undefined
    /**
     * Replace a record's child rows: delete the rows whose foreign key points to the records of a batch, then insert
     * the new ones; `false` upserts the children by their key columns instead (they need some). @default true
     */
    readonly replaceAssociations?: boolean | undefined
    /**
     * Save the associations first, and point the records to them: each association's `foreignKey` is then a column
     * of the record's table, set to its child row's `references` column (by default the child's key column), the
     * child rows upserted by their key columns and read back by them (a record has at most one such row per
     * association). @default false
     */
    readonly saveAssociationsFirst?: boolean | undefined
    /**
     * The column of the table that identifies the rows of one write, when the column the children point to is made
     * by the database (a serial id): set to a new UUID on the written rows, which are then read back by it.
     * @default "bulk_import_id"
     */
    readonly bulkImportIdColumn?: string | undefined
    /** Retries of a deadlock, serialization failure or lost connection, with jittered backoff. @default 2 */
    readonly maxRetries?: number | undefined
    /** The first retry's wait (doubling, jittered). @default 100 millis */
    readonly retryBackoff?: Duration.DurationInput | undefined
    readonly errorPolicy?:
      | ErrorPolicy.ErrorPolicy<
        NoInfer<E | Error>,
        NoInfer<SchemaRef.Type<S> | Tombstone.Tombstone<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>>,
        Tags
      >
      | ErrorPolicy.ErrorPolicy<
        NoInfer<E | Error>,
        NoInfer<ReadonlyArray<SchemaRef.Type<S> | Tombstone.Tombstone<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>>>,
        Tags
      >
      | undefined
  }

  /**
   * Message mode: a record per message.
   *
   * @since 0.1.0
   */
  export interface MessageOptions<
    S extends SchemaRef.Any,
    KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
    E,
    R,
    Tags extends string
  > extends BaseOptions<S, KC, E, Tags> {
    /** @default "message" */
    readonly delivery?: "message" | "batch" | undefined
    /** `false` skips the message (a tombstone too). @default every message is processed */
    readonly processMessage?:
      | ((
        payload: SchemaRef.Type<S> | Tombstone.Tombstone<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>,
        metadata: Consumer.Metadata<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>
      ) => OrEffect<boolean, E, R>)
      | undefined
  }

  /**
   * Batch mode: a fetched batch (at most `maxBatchSize` messages) per transaction.
   *
   * @since 0.1.0
   */
  export interface BatchOptions<
    S extends SchemaRef.Any,
    KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
    E,
    R,
    Tags extends string
  > extends BaseOptions<S, KC, E, Tags> {
    readonly delivery: "inlineBatch"
    /** The most messages a batch (one transaction) holds. @default 1000 */
    readonly maxBatchSize?: number | undefined
    /** Keep the last message per key; otherwise slices in which each key occurs once, in order. @default true */
    readonly compacted?: boolean | undefined
    /** Rows per `INSERT … ON CONFLICT` statement. @default 1000 */
    readonly maxDbBatchSize?: number | undefined
    /** Changes the messages of a batch before anything else (in the batch's transaction). */
    readonly preProcess?:
      | ((
        messages: ReadonlyArray<Message<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>>
      ) => Effect.Effect<ReadonlyArray<Message<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>>, E, R>)
      | undefined
    /** `false` rejects a record: it is not written, and `postProcessBatch` gets it as rejected. */
    readonly shouldConsume?:
      | ((
        record: Row,
        message: Message<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>
      ) => OrEffect<boolean, E, R>)
      | undefined
    /** Deletes the rows of tombstoned keys. @default `DELETE FROM table WHERE <deletedQuery(keys)>` */
    readonly removeRecords?: ((keys: ReadonlyArray<Row>) => Effect.Effect<void, E | DatabaseError, R>) | undefined
    /** The condition of the default `removeRecords`. @default the key columns in the keys */
    readonly deletedQuery?: ((keys: ReadonlyArray<Row>) => SQL) | undefined
    /** After the batch was written, in its transaction. */
    readonly postProcessBatch?:
      | ((
        result: BatchResult<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>
      ) => Effect.Effect<void, E, R>)
      | undefined
  }

  /**
   * @since 0.1.0
   */
  export type Options<
    S extends SchemaRef.Any,
    KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
    E,
    R,
    Tags extends string
  > = MessageOptions<S, KC, E, R, Tags> | BatchOptions<S, KC, E, R, Tags>
}

/**
 * The `deadlock{topic}` counter: deadlocks and serialization failures a record consumer retried.
 *
 * @since 0.1.0
 */
export const deadlock: Metric.Metric.Counter<number> = internal.deadlock

/** The options of a record consumer that are not a consumer's. */
const ownOptions = [
  "table",
  "keyColumns",
  "recordKey",
  "recordAttributes",
  "maxRetries",
  "retryBackoff",
  "processMessage",
  "compacted",
  "maxDbBatchSize",
  "preProcess",
  "shouldConsume",
  "removeRecords",
  "deletedQuery",
  "postProcessBatch",
  "associations",
  "replaceAssociations",
  "saveAssociationsFirst",
  "bulkImportIdColumn"
] as const

/**
 * Defines a record consumer: a `Consumer` (tombstones handed to it) whose handler writes to `table`. Run it like any
 * consumer (`Consumers.layer([...])`, `TestConsume.testConsumeBatch`); its handler needs `Database` and the
 * `SchemaBackend` (for the schema's fields). Throws `ConsumerDefinitionError` for a table without the key columns.
 *
 * @since 0.1.0
 */
export const make = <
  S extends SchemaRef.Any,
  const KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
  E = never,
  R = never,
  const Tags extends ErrorPolicy.Tag<E | Error> = never
>(
  options: RecordConsumer.Options<S, KC, E, R, Tags>
): Consumer.Consumer<
  SchemaRef.Type<S>,
  KeyConfig.KeyOf<SchemaRef.Type<S>, KC>,
  E | Error,
  R | Database | SchemaBackend.SchemaBackend,
  SchemaRef.Type<S> | Tombstone.Tombstone<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>
> => {
  const handlers = internal.make(options as unknown as internal.Options)
  const rest: Record<string, unknown> = { ...options }
  for (const own of ownOptions) delete rest[own]
  return Consumer.make({
    ...rest,
    tombstones: true,
    ...(handlers._tag === "Batch"
      ? { delivery: "inlineBatch" as const, handleBatch: handlers.handleBatch }
      : { delivery: options.delivery ?? "message", handle: handlers.handle })
  } as never) as never
}
