/**
 * The work of `RecordConsumer`: rows from messages, compaction and slicing, the batch transaction with its retries,
 * and the row-by-row fallback.
 */
import { type Consumer, ConsumerError, type KeyConfig, SchemaBackend, type SchemaRef, Tombstone } from "@deimos/core"
import { eq, inArray, type SQL } from "drizzle-orm"
import type { PgColumn, PgTable } from "drizzle-orm/pg-core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as Database from "../Database.js"
import { DatabaseError } from "../DatabaseError.js"
import { type Failure, RecordConsumerError } from "./recordError.js"
import {
  checkRow,
  columnKey,
  conflictSet,
  identityOf,
  keysCondition,
  type Row,
  type TableInfo,
  tableInfo,
  unnestUpsert,
  withTimestamps
} from "./recordTable.js"

type Fx<A> = Effect.Effect<A, unknown, unknown>
type OrFx<A> = A | Fx<A>

/** A message as the batch hooks see it. */
export interface Message {
  readonly key: unknown
  readonly payload: unknown
  readonly offset: string
  readonly headers: Readonly<Record<string, string>>
}

/** The options as this module reads them (the public module types them). */
export interface Options {
  readonly topic: string
  readonly groupId: string
  readonly name?: string | undefined
  readonly schema: SchemaRef.Any
  readonly keyConfig: KeyConfig.KeyConfig<Record<string, unknown>>
  readonly table: PgTable
  readonly keyColumns?: ReadonlyArray<string> | undefined
  readonly recordKey?: ((key: unknown) => Row) | undefined
  readonly recordAttributes?: ((payload: unknown, key: unknown, defaults: () => Row) => Row) | undefined
  readonly maxRetries?: number | undefined
  readonly retryBackoff?: Duration.DurationInput | undefined
  readonly delivery?: "message" | "batch" | "inlineBatch" | undefined
  readonly processMessage?: ((payload: unknown, metadata: Consumer.Metadata<unknown>) => OrFx<boolean>) | undefined
  readonly compacted?: boolean | undefined
  readonly maxDbBatchSize?: number | undefined
  readonly preProcess?: ((messages: ReadonlyArray<Message>) => Fx<ReadonlyArray<Message>>) | undefined
  readonly shouldConsume?: ((record: Row, message: Message) => OrFx<boolean>) | undefined
  readonly removeRecords?: ((keys: ReadonlyArray<Row>) => Fx<void>) | undefined
  readonly deletedQuery?: ((keys: ReadonlyArray<Row>) => SQL) | undefined
  readonly associations?: ReadonlyArray<AssociationOptions> | undefined
  readonly replaceAssociations?: boolean | undefined
  readonly saveAssociationsFirst?: boolean | undefined
  readonly bulkImportIdColumn?: string | undefined
  readonly postProcessBatch?:
    | ((result: {
      readonly saved: ReadonlyArray<Row>
      readonly rejected: ReadonlyArray<{ readonly record: Row; readonly message: Message }>
      readonly deleted: ReadonlyArray<Row>
      readonly failed: ReadonlyArray<Failure>
    }) => Fx<void>)
    | undefined
}

/** Rows of a child table written with each record (`foreignKey` set to the record's `references` column). */
export interface AssociationOptions {
  readonly table: PgTable
  readonly foreignKey: string
  readonly references?: string | undefined
  readonly keyColumns?: ReadonlyArray<string> | undefined
  readonly rows: (payload: unknown, record: Row) => ReadonlyArray<Row>
}

export const deadlock = Metric.counter("deadlock", {
  description: "Deadlocks and serialization failures retried by record consumers"
})

const asEffect = <A>(value: OrFx<A>): Fx<A> => Effect.isEffect(value) ? value as Fx<A> : Effect.succeed(value)

/** How a payload field becomes a column value. */
interface FieldPlan {
  readonly field: string
  readonly key: string
  readonly convert: ((value: unknown) => unknown) | undefined
}

const dateOf = (logicalType: string | undefined) => (value: unknown): unknown => {
  const n = typeof value === "bigint" ? Number(value) : value
  if (typeof n !== "number") return value
  switch (logicalType) {
    case "timestamp-millis":
    case "local-timestamp-millis":
      return new Date(n)
    case "timestamp-micros":
    case "local-timestamp-micros":
      return new Date(Math.floor(n / 1000))
    case "date":
      return new Date(n * 86_400_000)
    default:
      // an integer without a logical type is epoch seconds (as Deimos reads it)
      return new Date(n * 1000)
  }
}

const converterOf = (field: SchemaBackend.SchemaField, column: PgColumn): FieldPlan["convert"] => {
  if (column.dataType === "date") return dateOf(field.logicalType)
  if (column.dataType === "number") {
    return (value) => typeof value === "bigint" && Number.isSafeInteger(Number(value)) ? Number(value) : value
  }
  if (column.columnType === "PgTimestampString" || column.columnType === "PgDateString") {
    return (value) => {
      const d = typeof value === "number" || typeof value === "bigint" ? dateOf(field.logicalType)(value) : value
      return d instanceof Date
        ? (column.columnType === "PgDateString" ? d.toISOString().slice(0, 10) : d.toISOString())
        : d
    }
  }
  return undefined
}

const planOf = (info: TableInfo, fields: ReadonlyArray<SchemaBackend.SchemaField>): ReadonlyArray<FieldPlan> =>
  fields.flatMap((field) => {
    const key = columnKey(info, field.name)
    if (key === undefined || key === info.createdAt || key === info.updatedAt) return []
    return [{ field: field.name, key, convert: converterOf(field, info.columns.get(key)!) }]
  })

const attributesBy = (plan: ReadonlyArray<FieldPlan>) => (payload: unknown): Row => {
  const out: Record<string, unknown> = {}
  const p = payload as Record<string, unknown>
  for (const { convert, field, key } of plan) {
    const value = p[field]
    if (value === undefined) continue
    out[key] = convert === undefined ? value : convert(value)
  }
  return out
}

/**
 * A record: its identity (key columns), its key, and its row (none for a tombstone; not built yet when the message
 * key alone gave the identity, so that compaction builds rows only for the messages it keeps).
 */
interface Entry {
  readonly identity: string
  readonly key: Row
  readonly tombstone: boolean
  readonly row: Row | undefined
  readonly message: Message
}

export type Handlers =
  | { readonly _tag: "Message"; readonly handle: (payload: unknown, metadata: Consumer.Metadata<unknown>) => Fx<void> }
  | {
    readonly _tag: "Batch"
    readonly handleBatch: (payloads: ReadonlyArray<unknown>, metadata: Consumer.BatchMetadata<unknown>) => Fx<void>
  }

const isDatabaseError = (u: unknown): u is DatabaseError => u instanceof DatabaseError

export const make = (options: Options): Handlers => {
  const consumer = options.name ?? `${options.groupId}:${options.topic}`
  let info: TableInfo
  try {
    info = tableInfo(options.table, options.keyColumns)
  } catch (error) {
    throw new ConsumerError.ConsumerDefinitionError({
      consumer,
      message: `Record consumer ${consumer}: ${error instanceof Error ? error.message : String(error)}`
    })
  }
  const table = info.table
  const replaceAssociations = options.replaceAssociations ?? true
  const saveFirst = options.saveAssociationsFirst === true
  const associations = (saveFirst ? [] : options.associations ?? []).map((a) => {
    let child: TableInfo
    try {
      child = tableInfo(a.table, a.keyColumns, replaceAssociations)
    } catch (error) {
      throw new ConsumerError.ConsumerDefinitionError({
        consumer,
        message: `Record consumer ${consumer}: an association: ${
          error instanceof Error ? error.message : String(error)
        }`
      })
    }
    const definition = (message: string) =>
      new ConsumerError.ConsumerDefinitionError({ consumer, message: `Record consumer ${consumer}: ${message}` })
    const foreignKey = columnKey(child, a.foreignKey)
    if (foreignKey === undefined) throw definition(`${child.name} has no column "${a.foreignKey}" (its foreignKey)`)
    const references = a.references === undefined
      ? (info.keyColumns.length === 1 ? info.keyColumns[0] : undefined)
      : columnKey(info, a.references)
    if (references === undefined) {
      throw definition(`the association with ${child.name} needs references: the column of ${info.name} it points to`)
    }
    return { child, foreignKey, references, rows: a.rows }
  })
  // saved first: the record points to its child (`foreignKey` is the record's column, `references` the child's)
  const firsts = (saveFirst ? options.associations ?? [] : []).map((a) => {
    const definition = (message: string) =>
      new ConsumerError.ConsumerDefinitionError({ consumer, message: `Record consumer ${consumer}: ${message}` })
    let child: TableInfo
    try {
      child = tableInfo(a.table, a.keyColumns)
    } catch (error) {
      throw definition(`an association saved first: ${error instanceof Error ? error.message : String(error)}`)
    }
    const foreignKey = columnKey(info, a.foreignKey)
    if (foreignKey === undefined) throw definition(`${info.name} has no column "${a.foreignKey}" (a foreignKey)`)
    const references = a.references === undefined
      ? (child.keyColumns.length === 1 ? child.keyColumns[0] : undefined)
      : columnKey(child, a.references)
    if (references === undefined) {
      throw definition(`the association with ${child.name} needs references: the column of ${child.name} it points to`)
    }
    return { child, foreignKey, references, rows: a.rows }
  })
  const firstKeys = firsts.map((a) => a.foreignKey)
  const noRelated = associations.length === 0 && firsts.length === 0 ? { children: [], firsts: [] } : undefined
  const bulkColumn = associations.length === 0
    ? undefined
    : columnKey(info, options.bulkImportIdColumn ?? "bulk_import_id")
  const fail = (
    reason: "Attributes" | "Key",
    message: string,
    key: Row | undefined,
    column: string | undefined
  ) => new RecordConsumerError({ reason, consumer, table: info.name, message, key, column })

  // the default attributes per schema backend (the schema's fields, resolved once per backend)
  const plans = new WeakMap<SchemaBackend.SchemaBackend.Service, (payload: unknown) => Row>()
  const attributesOf = Effect.flatMap(SchemaBackend.SchemaBackend, (backend) => {
    const known = plans.get(backend)
    if (known !== undefined) return Effect.succeed(known)
    return Effect.map(backend.fields(options.schema), (fields) => {
      const attributes = attributesBy(planOf(info, fields))
      plans.set(backend, attributes)
      return attributes
    })
  })

  const defaultRecordKey = (key: unknown): Row | RecordConsumerError => {
    if (typeof key === "object" && key !== null && !(key instanceof Date)) {
      const out: Record<string, unknown> = {}
      const k = key as Record<string, unknown>
      for (const column of info.keyColumns) {
        const value = k[column] ?? k[info.columns.get(column)!.name]
        if (value !== undefined) out[column] = value
      }
      return out
    }
    if (info.keyColumns.length === 1) return { [info.keyColumns[0]]: key }
    return fail(
      "Key",
      `${consumer}: the message key is a single value but ${info.name} is keyed by ${
        info.keyColumns.join(", ")
      }: give recordKey(key)`,
      undefined,
      undefined
    )
  }
  const recordKey = options.recordKey === undefined
    ? defaultRecordKey
    : (key: unknown) => byPropertyNames(options.recordKey!(key))

  /** A row whose attributes may be named by SQL column names, by the table's property names. */
  const byPropertyNames = (row: Row): Row => {
    let out: Record<string, unknown> | undefined
    for (const k of Object.keys(row)) {
      if (info.columns.has(k)) continue
      const key = info.bySqlName.get(k)
      if (key === undefined) continue
      out ??= { ...row }
      delete out[k]
      if (out[key] === undefined) out[key] = row[k]
    }
    return out ?? row
  }

  /** The entry of a message, or why it has none. */
  const entryOf = (
    attributes: (payload: unknown) => Row,
    message: Message,
    later: boolean
  ): Entry | RecordConsumerError => {
    const payload = message.payload
    if (Tombstone.isTombstone(payload)) {
      const key = recordKey(payload.key)
      if (key instanceof RecordConsumerError) return key
      const id = identityOf(info, key)
      if ("missing" in id) {
        return fail(
          "Key",
          `${consumer}: a tombstone's key gives no value for key column "${id.missing}" of ${info.name}`,
          key,
          id.missing
        )
      }
      return { identity: id.identity, key: id.key, tombstone: true, row: undefined, message }
    }
    if (later && message.key !== null && message.key !== undefined) {
      const key = recordKey(message.key)
      if (key instanceof RecordConsumerError) return key
      const id = identityOf(info, key)
      if (!("missing" in id)) return { identity: id.identity, key: id.key, tombstone: false, row: undefined, message }
    }
    return built(attributes, message)
  }

  /** The entry of a message that is not a tombstone, its row built. */
  const built = (attributes: (payload: unknown) => Row, message: Message): Entry | RecordConsumerError => {
    const payload = message.payload
    const attrs = options.recordAttributes === undefined
      ? attributes(payload)
      : byPropertyNames(options.recordAttributes(payload, message.key, () => attributes(payload)))
    let row = attrs
    if (message.key !== null && message.key !== undefined) {
      const key = recordKey(message.key)
      if (key instanceof RecordConsumerError) return key
      row = { ...attrs, ...key }
    }
    const id = identityOf(info, row)
    if ("missing" in id) {
      return fail(
        "Key",
        `${consumer}: the record has no value for key column "${id.missing}" of ${info.name} (neither the message key nor the attributes give one)`,
        undefined,
        id.missing
      )
    }
    return { identity: id.identity, key: id.key, tombstone: false, row, message }
  }

  const checked = (entry: Entry & { readonly row: Row }): RecordConsumerError | undefined => {
    const problem = checkRow(info, entry.row, firstKeys)
    return problem === undefined
      ? undefined
      : fail("Attributes", `${consumer}: ${problem.message}`, entry.key, problem.column)
  }

  const width = Math.max(1, info.columns.size)
  const chunkSize = Math.max(1, Math.min(options.maxDbBatchSize ?? 1000, Math.floor(60_000 / width)))
  const chunks = <A>(all: ReadonlyArray<A>): ReadonlyArray<ReadonlyArray<A>> => {
    if (all.length <= chunkSize) return [all]
    const out: Array<ReadonlyArray<A>> = []
    for (let i = 0; i < all.length; i += chunkSize) out.push(all.slice(i, i + chunkSize))
    return out
  }

  const upsertInto = (target: TableInfo, rows: ReadonlyArray<Row>) => {
    const statement = rows.length > 1 ? unnestUpsert(target, rows) : undefined
    return statement !== undefined ? Database.execute(statement) : Database.use((db) => {
      const insert = db.insert(target.table).values(rows.map((row) => withTimestamps(target, row)) as never)
      const set = conflictSet(target, rows)
      return Object.keys(set).length === 0
        ? insert.onConflictDoNothing({ target: target.keyTargets as never })
        : insert.onConflictDoUpdate({ target: target.keyTargets as never, set: set as never })
    })
  }
  const upsert = (rows: ReadonlyArray<Row>) => upsertInto(info, rows)

  /** The children saved first, and the records pointing to them (their foreign keys read back by the children's keys). */
  const savingFirst = (pending: ReadonlyArray<Pending>): Fx<ReadonlyArray<Pending>> =>
    Effect.gen(function*() {
      let out = pending
      for (let i = 0; i < firsts.length; i++) {
        const a = firsts[i]
        const last = new Map<string, Row>()
        for (const p of out) {
          for (const row of p.firsts[i]) {
            const id = identityOf(a.child, row)
            if (!("missing" in id)) {
              last.delete(id.identity)
              last.set(id.identity, row)
            }
          }
        }
        if (last.size === 0) continue
        const rows = [...last.values()]
        for (let from = 0; from < rows.length; from += chunkSize) {
          yield* upsertInto(a.child, rows.slice(from, from + chunkSize))
        }
        const keys = rows.map((row) => (identityOf(a.child, row) as { readonly key: Row }).key)
        const saved = yield* Database.use((db) => db.select().from(a.child.table).where(keysCondition(a.child, keys)))
        const byIdentity = new Map<string, Row>()
        for (const row of saved as ReadonlyArray<Row>) {
          const id = identityOf(a.child, row)
          if (!("missing" in id)) byIdentity.set(id.identity, row)
        }
        out = out.map((p) => {
          const child = p.firsts[i][0]
          if (child === undefined) return p
          const id = identityOf(a.child, child)
          const value = "missing" in id ? undefined : byIdentity.get(id.identity)?.[a.references]
          return { ...p, row: { ...p.row, [a.foreignKey]: value } }
        })
      }
      return out
    })

  /** A record with its child rows (one list per association). */
  interface Pending {
    readonly row: Row
    readonly key: Row
    readonly children: ReadonlyArray<ReadonlyArray<Row>>
    readonly firsts: ReadonlyArray<ReadonlyArray<Row>>
  }

  /** The records upserted, then their associations: the children replaced (or upserted by their keys). */
  const write = (all: ReadonlyArray<Pending>): Fx<void> => {
    if (firsts.length > 0) return Effect.flatMap(savingFirst(all), (pending) => upsert(pending.map((p) => p.row)))
    if (associations.length === 0) return Effect.asVoid(upsert(all.map((p) => p.row)))
    const pending = all
    return Effect.gen(function*() {
      const fetch = associations.some((a) => pending.some((p) => p.row[a.references] === undefined))
      if (fetch && bulkColumn === undefined) {
        return yield* Effect.fail(fail(
          "Key",
          `${consumer}: the records do not hold the column their associations reference, and ${info.name} has no ${
            options.bulkImportIdColumn ?? "bulk_import_id"
          } column to find them by after the upsert`,
          undefined,
          undefined
        ))
      }
      const bulkId = fetch ? globalThis.crypto.randomUUID() : undefined
      yield* upsert(
        bulkId === undefined ? pending.map((p) => p.row) : pending.map((p) => ({ ...p.row, [bulkColumn!]: bulkId }))
      )
      const written = new Map<string, Row>()
      if (bulkId !== undefined) {
        const rows = yield* Database.use((db) =>
          db.select().from(table).where(eq(info.columns.get(bulkColumn!)!, bulkId))
        )
        for (const row of rows as ReadonlyArray<Row>) {
          const id = identityOf(info, row)
          if (!("missing" in id)) written.set(id.identity, row)
        }
      }
      for (let i = 0; i < associations.length; i++) {
        const a = associations[i]
        const refs = pending.map((p) => {
          if (p.row[a.references] !== undefined) return p.row[a.references]
          const id = identityOf(info, p.key)
          return "missing" in id ? undefined : written.get(id.identity)?.[a.references]
        })
        const parents = [...new Set(refs.filter((r) => r !== undefined && r !== null))]
        const fk = a.child.columns.get(a.foreignKey)!
        if (replaceAssociations && parents.length > 0) {
          yield* Database.use((db) => db.delete(a.child.table).where(inArray(fk, parents)))
        }
        const rows = pending.flatMap((p, j) =>
          p.children[i].map((c) => withTimestamps(a.child, { ...c, [a.foreignKey]: refs[j] }))
        )
        for (let from = 0; from < rows.length; from += chunkSize) {
          const slice = rows.slice(from, from + chunkSize)
          yield* Database.use((db) => {
            const insert = db.insert(a.child.table).values(slice as never)
            if (replaceAssociations || a.child.keyColumns.length === 0) return insert
            const set = conflictSet(a.child, slice)
            return Object.keys(set).length === 0
              ? insert.onConflictDoNothing({ target: a.child.keyTargets as never })
              : insert.onConflictDoUpdate({ target: a.child.keyTargets as never, set: set as never })
          })
        }
      }
    })
  }

  /** The child rows of a record, or the first that does not fit its table. */
  const childrenOf = (
    payload: unknown,
    row: Row,
    key: Row
  ): Pick<Pending, "children" | "firsts"> | RecordConsumerError => {
    const children: Array<ReadonlyArray<Row>> = []
    for (const a of associations) {
      const rows = a.rows(payload, row)
      for (const child of rows) {
        const problem = checkRow(a.child, child, [a.foreignKey])
        if (problem !== undefined) return fail("Attributes", `${consumer}: ${problem.message}`, key, problem.column)
      }
      children.push(rows)
    }
    const saved: Array<ReadonlyArray<Row>> = []
    for (const a of firsts) {
      const rows = a.rows(payload, row)
      if (rows.length > 1) {
        return fail(
          "Attributes",
          `${consumer}: a record points to one row of ${a.child.name} (saveAssociationsFirst); rows gave ${rows.length}`,
          key,
          a.foreignKey
        )
      }
      for (const child of rows) {
        const problem = checkRow(a.child, child)
        if (problem !== undefined) return fail("Attributes", `${consumer}: ${problem.message}`, key, problem.column)
        if ("missing" in identityOf(a.child, child)) {
          return fail(
            "Key",
            `${consumer}: a row of ${a.child.name} saved first has no value for its key column(s) ${
              a.child.keyColumns.join(", ")
            }`,
            key,
            undefined
          )
        }
      }
      saved.push(rows)
    }
    return { children, firsts: saved }
  }

  const remove = (keys: ReadonlyArray<Row>): Fx<void> =>
    options.removeRecords !== undefined
      ? options.removeRecords(keys)
      : Effect.asVoid(Database.use((db) =>
        db.delete(table).where(
          options.deletedQuery === undefined ? keysCondition(info, keys) : options.deletedQuery(keys)
        )
      ))

  const maxRetries = Math.max(0, options.maxRetries ?? 2)
  const schedule = Schedule.exponential(Duration.decode(options.retryBackoff ?? "100 millis")).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(maxRetries))
  )
  /** Tried again while the database says trying again may help (a deadlock, a serialization failure, a lost connection). */
  const retrying = <A>(topic: string, attempt: Fx<A>): Fx<A> =>
    attempt.pipe(
      Effect.tapError((error) => {
        if (!isDatabaseError(error) || !error.retriable) return Effect.void
        const counted = error.reason === "Deadlock" || error.reason === "Serialization"
          ? Metric.increment(Metric.tagged(deadlock, "topic", topic))
          : Effect.void
        return Effect.zipRight(
          counted,
          Effect.logWarning(`Record consumer ${consumer}: ${error.message}; trying the transaction again`)
        )
      }),
      Effect.retry({ schedule, while: (error) => isDatabaseError(error) && error.retriable })
    )

  /** Runs `write` in a savepoint; a refusal of the database (not retriable) is recorded as the failure of `key`. */
  const saving = (key: Row, write: Fx<unknown>, failures: Array<Failure>): Fx<boolean> =>
    Database.transaction(write).pipe(
      Effect.as(true),
      Effect.catchIf(
        (error): error is DatabaseError => isDatabaseError(error) && !error.retriable,
        (error) => Effect.sync(() => (failures.push({ key, error }), false))
      )
    )

  if (options.delivery !== "inlineBatch") {
    const handle = (payload: unknown, metadata: Consumer.Metadata<unknown>): Fx<void> =>
      Effect.gen(function*() {
        if (options.processMessage !== undefined) {
          const go = yield* asEffect(options.processMessage(payload, metadata))
          if (!go) return
        }
        const attributes = yield* attributesOf
        const entry = entryOf(attributes, {
          key: metadata.key,
          payload,
          offset: metadata.offset,
          headers: metadata.headers
        }, false)
        if (entry instanceof RecordConsumerError) return yield* Effect.fail(entry)
        if (entry.tombstone || entry.row === undefined) {
          return yield* retrying(metadata.topic, Database.transaction(remove([entry.key])))
        }
        const problem = checked(entry as Entry & { readonly row: Row })
        if (problem !== undefined) return yield* Effect.fail(problem)
        const related = childrenOf(payload, entry.row, entry.key)
        if (related instanceof RecordConsumerError) return yield* Effect.fail(related)
        yield* retrying(metadata.topic, Database.transaction(write([{ row: entry.row, key: entry.key, ...related }])))
      })
    return { _tag: "Message", handle }
  }

  const compacted = options.compacted ?? true

  /** The entries in slices: the last per key (compacted), or slices in which each key occurs once, in order. */
  const slicesOf = (entries: ReadonlyArray<Entry>): ReadonlyArray<ReadonlyArray<Entry>> => {
    if (compacted) {
      const last = new Map<string, Entry>()
      for (const entry of entries) {
        last.delete(entry.identity)
        last.set(entry.identity, entry)
      }
      return [[...last.values()]]
    }
    const seen = new Map<string, number>()
    const slices: Array<Array<Entry>> = []
    for (const entry of entries) {
      const n = seen.get(entry.identity) ?? 0
      seen.set(entry.identity, n + 1)
      ;(slices[n] ??= []).push(entry)
    }
    return slices
  }

  /** One attempt at a batch, in one transaction: in bulk, or row by row (each row in a savepoint). */
  const attempt = (messages: ReadonlyArray<Message>, rowByRow: boolean): Fx<ReadonlyArray<Failure>> =>
    Database.transaction(Effect.gen(function*() {
      const attributes = yield* attributesOf
      const all = options.preProcess === undefined ? messages : yield* options.preProcess(messages)
      const failures: Array<Failure> = []
      const entries: Array<Entry> = []
      for (const message of all) {
        const entry = entryOf(attributes, message, true)
        if (entry instanceof RecordConsumerError) failures.push({ key: entry.key ?? {}, error: entry })
        else entries.push(entry)
      }
      const saved: Array<Row> = []
      const rejected: Array<{ readonly record: Row; readonly message: Message }> = []
      const deleted: Array<Row> = []
      for (const slice of slicesOf(entries)) {
        const removes: Array<Row> = []
        const upserts: Array<Pending> = []
        for (const kept of slice) {
          if (kept.tombstone) {
            removes.push(kept.key)
            continue
          }
          const entry = kept.row === undefined ? built(attributes, kept.message) : kept
          if (entry instanceof RecordConsumerError) {
            failures.push({ key: kept.key, error: entry })
            continue
          }
          const problem = checked(entry as Entry & { readonly row: Row })
          if (problem !== undefined) {
            failures.push({ key: entry.key, error: problem })
            continue
          }
          const row = entry.row!
          if (options.shouldConsume !== undefined && !(yield* asEffect(options.shouldConsume(row, entry.message)))) {
            rejected.push({ record: row, message: entry.message })
            continue
          }
          const related = noRelated ?? childrenOf(entry.message.payload, row, entry.key)
          if (related instanceof RecordConsumerError) {
            failures.push({ key: entry.key, error: related })
            continue
          }
          upserts.push({ row, key: entry.key, ...related })
        }
        for (const keys of removes.length === 0 ? [] : chunks(removes)) {
          if (!rowByRow) yield* remove(keys)
          else if (!(yield* saving(keys[0], remove(keys), []))) {
            // one key of the chunk is refused: each on its own
            for (const key of keys) yield* saving(key, remove([key]), failures)
            deleted.push(...keys.filter((key) => !failures.some((f) => f.key === key)))
            continue
          }
          deleted.push(...keys)
        }
        if (!rowByRow) {
          for (const pending of upserts.length === 0 ? [] : chunks(upserts)) yield* write(pending)
          saved.push(...upserts.map((p) => p.row))
        } else {
          for (const pending of upserts) {
            if (yield* saving(pending.key, write([pending]), failures)) saved.push(pending.row)
          }
        }
      }
      if (options.postProcessBatch !== undefined) {
        yield* options.postProcessBatch({ saved, rejected, deleted, failed: failures })
      }
      return failures
    }))

  const handleBatch = (payloads: ReadonlyArray<unknown>, metadata: Consumer.BatchMetadata<unknown>): Fx<void> => {
    const messages: Array<Message> = payloads.map((payload, i) => ({
      key: metadata.keys[i],
      payload,
      offset: metadata.offsets[i],
      headers: metadata.headers[i]
    }))
    return retrying(metadata.topic, attempt(messages, false)).pipe(
      Effect.catchIf(
        (error): error is DatabaseError => isDatabaseError(error) && !error.retriable,
        (error) =>
          Effect.zipRight(
            Effect.logWarning(
              `Record consumer ${consumer}: the batch write was refused (${error.message}); writing it row by row`
            ),
            retrying(metadata.topic, attempt(messages, true))
          )
      ),
      Effect.flatMap((failures) =>
        failures.length === 0 ? Effect.void : Effect.fail(
          new RecordConsumerError({
            reason: "Rows",
            consumer,
            table: info.name,
            failures,
            message:
              `${consumer}: ${failures.length} of ${messages.length} records could not be saved to ${info.name} (the rest were): ${
                failures.slice(0, 5).map((f) => `${JSON.stringify(f.key)}: ${f.error.message}`).join("; ")
              }${failures.length > 5 ? "; …" : ""}`
          })
        )
      )
    )
  }
  return { _tag: "Batch", handleBatch }
}
