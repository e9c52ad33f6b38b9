/**
 * Producers of table rows. A record producer binds a core `Producer` to a drizzle table: `sendEvents(rows)` turns
 * rows into payloads and publishes them through the producer (so through whatever `ProducerBackend` is in context:
 * Kafka, or the outbox inside the ambient transaction).
 *
 * Rows may come in drizzle's shape (property names, driver values already mapped) or raw (column names, as
 * `Database.execute` or a trigger's `to_jsonb` gives them): both are mapped back to the table's properties. By
 * default a payload holds the schema's fields only, each taken from the property or column of the same name.
 *
 * @since 0.1.0
 */
import type { Producer, ProducerError, SchemaError } from "@deimos/core"
import { SchemaBackend } from "@deimos/core"
import { KafkaError } from "@deimos/kafka"
import { getTableColumns, inArray } from "drizzle-orm"
import { getTableConfig, type PgColumn, type PgTable } from "drizzle-orm/pg-core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Database from "./Database.js"
import type { DatabaseError } from "./DatabaseError.js"

/**
 * A row: property or column names to values.
 *
 * @since 0.1.0
 */
export type Row = Readonly<Record<string, unknown>>

/**
 * @since 0.1.0
 */
export interface Options<A, K> {
  /** The producer the payloads go to. */
  readonly producer: Producer.Producer<A, K>
  /** The rows' table. */
  readonly table: PgTable
  /**
   * The payload of a row, from its attributes (the row in property names, restricted to the schema's fields) and
   * the row itself (every property). @default the attributes
   */
  readonly generatePayload?: ((attributes: Row, row: Row) => A) | undefined
  /** Reads the rows again by primary key before sending (rows gone meanwhile are not sent). @default false */
  readonly refetch?: boolean | undefined
  /** The primary key's property. @default the table's one-column primary key */
  readonly primaryKey?: string | undefined
  /** Runs after every `sendEvents` with the rows it sent. */
  readonly postProcess?:
    | ((rows: ReadonlyArray<Row>) => Effect.Effect<unknown, DatabaseError, Database.Database>)
    | undefined
}

/**
 * A row that could not be sent, and why.
 *
 * @since 0.1.0
 */
export interface Failed {
  readonly row: Row
  readonly error: Producer.Producer.Error
}

/**
 * What publishing rows needs in context.
 *
 * @since 0.1.0
 */
export type Requirements = Producer.Producer.Requirements | Database.Database

/**
 * @since 0.1.0
 */
export interface RecordProducer<A, K> {
  readonly producer: Producer.Producer<A, K>
  readonly table: PgTable
  /** The table's name, schema-qualified when its schema is given. */
  readonly tableName: string
  /** The primary key's property and column. */
  readonly primaryKey: { readonly property: string; readonly column: string }
  /** A row (drizzle's or raw) in the table's property names, with driver values mapped (dates, bigints, json). */
  readonly normalize: (row: Row) => Row
  /** The payload of a row. */
  readonly payloadOf: (row: Row) => Effect.Effect<A, SchemaError.SchemaError, SchemaBackend.SchemaBackend>
  /** Publishes the rows' payloads (all or nothing, like `publishList`), then runs `postProcess`. */
  readonly sendEvents: (
    rows: ReadonlyArray<Row>
  ) => Effect.Effect<void, Producer.Producer.Error | DatabaseError, Requirements>
  /**
   * Publishes the rows' payloads; when the batch fails with an error `skip` accepts (a payload the schema refuses,
   * a message the broker finds too large), sends them one at a time and answers the rows that failed that way
   * instead of failing. `postProcess` runs with the rows sent.
   */
  readonly sendEventsSkipping: (
    rows: ReadonlyArray<Row>,
    skip: (error: Producer.Producer.Error) => boolean
  ) => Effect.Effect<ReadonlyArray<Failed>, Producer.Producer.Error | DatabaseError, Requirements>
}

/**
 * Any record producer.
 *
 * @since 0.1.0
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Any = RecordProducer<any, any>

/** A raw value (a column's) mapped as drizzle maps what the driver answers; the value itself when that fails. */
const fromDriver = (column: PgColumn, value: unknown): unknown => {
  if (value === null || (typeof value !== "string" && typeof value !== "number")) return value
  try {
    return column.mapFromDriverValue(value)
  } catch {
    return value
  }
}

/**
 * A record producer for `table`.
 *
 * @since 0.1.0
 */
export const make = <A, K>(options: Options<A, K>): RecordProducer<A, K> => {
  const { producer, table } = options
  const columns = Object.entries(getTableColumns(table)) as Array<[string, PgColumn]>
  const config = getTableConfig(table)
  const primary = options.primaryKey !== undefined
    ? columns.find(([property]) => property === options.primaryKey)
    : columns.find(([, column]) => column.primary) ??
      (config.primaryKeys[0]?.columns.length === 1
        ? columns.find(([, column]) => column === config.primaryKeys[0].columns[0])
        : undefined)
  if (primary === undefined) {
    throw new Error(
      `RecordProducer for table ${config.name}: ${
        options.primaryKey === undefined
          ? "the table has no one-column primary key; name one with `primaryKey`"
          : `the table has no property ${options.primaryKey}`
      }`
    )
  }
  const primaryKey = { property: primary[0], column: primary[1].name }

  const normalize = (row: Row): Row => {
    const out: Record<string, unknown> = {}
    for (const [property, column] of columns) {
      // a raw driver value (a bigint's string, a timestamp's text) is mapped; a mapped one maps to itself
      if (property in row) out[property] = fromDriver(column, row[property])
      else if (column.name in row) out[property] = fromDriver(column, row[column.name])
    }
    return out
  }

  // a schema field named as a property, else as a column
  const propertyOf = new Map<string, string>()
  for (const [property, column] of columns) {
    propertyOf.set(column.name, property)
    propertyOf.set(property, property)
  }
  const fieldsBy = new WeakMap<SchemaBackend.SchemaBackend.Service, ReadonlyArray<string>>()
  const fieldsOf = Effect.flatMap(SchemaBackend.SchemaBackend, (backend) => {
    const known = fieldsBy.get(backend)
    if (known !== undefined) return Effect.succeed(known)
    return Effect.map(backend.fields(producer.schema), (fields) => {
      const names = fields.map((f) => f.name)
      fieldsBy.set(backend, names)
      return names
    })
  })
  const payloadWith = (fields: ReadonlyArray<string>, raw: Row): A => {
    const row = normalize(raw)
    const attributes: Record<string, unknown> = {}
    for (const field of fields) {
      const property = propertyOf.get(field)
      if (property !== undefined && property in row) attributes[field] = row[property]
    }
    return options.generatePayload === undefined ? attributes as A : options.generatePayload(attributes, row)
  }

  const refetched = (rows: ReadonlyArray<Row>): Effect.Effect<ReadonlyArray<Row>, DatabaseError, Database.Database> => {
    if (options.refetch !== true || rows.length === 0) return Effect.succeed(rows)
    const keys = rows.map((row) => normalize(row)[primaryKey.property])
    return Effect.map(
      Database.use((db) => db.select().from(table).where(inArray(primary[1], keys))),
      (found) => {
        const byKey = new Map(found.map((row) => [String((row as Row)[primaryKey.property]), row as Row]))
        return keys.flatMap((key) => {
          const row = byKey.get(String(key))
          return row === undefined ? [] : [row]
        })
      }
    )
  }

  const postProcess = (rows: ReadonlyArray<Row>) =>
    options.postProcess === undefined || rows.length === 0 ? Effect.void : Effect.asVoid(options.postProcess(rows))

  const payloadsOf = (rows: ReadonlyArray<Row>) =>
    Effect.map(fieldsOf, (fields) => rows.map((row) => payloadWith(fields, row)))

  return {
    producer,
    table,
    tableName: config.schema === undefined ? config.name : `${config.schema}.${config.name}`,
    primaryKey,
    normalize,
    payloadOf: (row) => Effect.map(fieldsOf, (fields) => payloadWith(fields, row)),
    sendEvents: (input) =>
      Effect.gen(function*() {
        const rows = yield* refetched(input)
        if (rows.length === 0) return
        yield* producer.publishList(yield* payloadsOf(rows))
        yield* postProcess(rows)
      }),
    sendEventsSkipping: (input, skip) =>
      Effect.gen(function*() {
        const rows = yield* refetched(input)
        if (rows.length === 0) return []
        const payloads = yield* payloadsOf(rows)
        const all = yield* Effect.either(producer.publishList(payloads))
        if (Either.isRight(all)) {
          yield* postProcess(rows)
          return []
        }
        if (!skip(all.left)) return yield* Effect.fail(all.left)
        // one at a time: the rows that fail with a skippable error are answered, the others sent
        const failed: Array<Failed> = []
        const sent: Array<Row> = []
        for (let i = 0; i < rows.length; i++) {
          const one = yield* Effect.either(producer.publishList([payloads[i]]))
          if (Either.isRight(one)) sent.push(rows[i])
          else if (skip(one.left)) failed.push({ row: rows[i], error: one.left })
          else return yield* Effect.fail(one.left)
        }
        yield* postProcess(sent)
        return failed
      })
  }
}

/**
 * A publishing error of a payload the schema refuses.
 *
 * @since 0.1.0
 */
export const isSchemaError = (error: Producer.Producer.Error): error is SchemaError.SchemaError =>
  error._tag === "SchemaError"

/**
 * A `ProducerError` of a message the broker refuses as too large.
 *
 * @since 0.1.0
 */
export const isTooLarge = (error: Producer.Producer.Error): error is ProducerError.ProducerError =>
  error._tag === "ProducerError" && error.cause instanceof KafkaError.KafkaError && KafkaError.isTooLarge(error.cause)
