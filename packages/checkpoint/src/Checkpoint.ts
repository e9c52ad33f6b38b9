/**
 * Idempotent consumption: a checkpoint wraps a consumer definition so that each message is handled once, with an
 * event log of what was handled and a failures table of what could not be.
 *
 * Each attempt at a message is one transaction of the ambient `Database`: the message is claimed first, by inserting
 * its event row with `INSERT … ON CONFLICT DO NOTHING` on the unique `(topic, group_id, checksum)` index, then the
 * handler runs in the same transaction, and its answer decides what commits: `ack(...)` completes the event row,
 * `skip` removes it (the handler's own writes commit either way). A claim that finds the row there is a duplicate
 * (a redelivery after a rebalance or a crash): the handler does not run. Two consumers claiming the same message at
 * once queue on the index: the second waits for the first transaction, then finds its row (or, if it rolled back,
 * claims it itself). A crash between the handler's writes and the commit rolls back both the writes and the claim,
 * and the message, whose offset was not committed, is handled again.
 *
 * A failed attempt (an error or a defect of the handler, or of the database) is retried with exponential backoff
 * while `retryConsume(payload, metadata, error)` says so (by default: fewer than `maxRetries` retries); after that a
 * failure row is stored and the consumer moves on to the next message. `retryFailure` runs the handler again for a
 * stored failure: an ack stores the event and deletes the failure in one transaction; a failing handler leaves the
 * failure as it was.
 *
 * The dedup key is by default the MD5 of the payload's canonical JSON (the same whatever the field order), or
 * `dedupKey(payload, metadata)` (a header, a business id). Without a retention sweeper the event log grows forever;
 * with one ({@link sweep}, {@link layerSweeper}) the dedup window is the retention age: a message redelivered after
 * its event was swept is handled again.
 *
 * @since 0.1.0
 */
import type { Consumer, KeyConfig, SchemaRef } from "@deimos/core"
import { Consumer as ConsumerModule, ErrorPolicy, Tombstone } from "@deimos/core"
import { Database } from "@deimos/sql"
import type { DatabaseError } from "@deimos/sql/DatabaseError"
import { eq, inArray, lt, sql } from "drizzle-orm"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as CheckpointError from "./CheckpointError.js"
import * as Instrumentation from "./CheckpointInstrumentation.js"
import * as Tables from "./CheckpointTables.js"
import * as Json from "./internal/json.js"

/** @since 0.1.0 */
export const TypeId: unique symbol = Symbol.for("@deimos/checkpoint/Checkpoint")

/**
 * The handler's answer to store the event: which entity it is about and when it happened.
 *
 * @since 0.1.0
 */
export interface Ack {
  readonly _tag: "Ack"
  readonly entityId: string
  readonly eventTime: Date
  readonly eventType?: string | undefined
  readonly eventVersion?: string | undefined
}

/**
 * The handler's answer to store nothing (its own writes still commit).
 *
 * @since 0.1.0
 */
export interface Skip {
  readonly _tag: "Skip"
}

/**
 * What a checkpointed handler answers.
 *
 * @since 0.1.0
 */
export type Action = Ack | Skip

/**
 * Stores the event (with the handler's writes, in one transaction).
 *
 * @since 0.1.0
 */
export const ack = (fields: {
  readonly entityId: string
  readonly eventTime: Date
  readonly eventType?: string | undefined
  readonly eventVersion?: string | undefined
}): Ack => ({ _tag: "Ack", ...fields })

/**
 * Stores no event.
 *
 * @since 0.1.0
 */
export const skip: Skip = { _tag: "Skip" }

/**
 * What happened to a message.
 *
 * @since 0.1.0
 */
export type Outcome = "acknowledged" | "skipped" | "alreadyConsumed" | "failed"

/**
 * @since 0.1.0
 */
export declare namespace Checkpoint {
  /**
   * @since 0.1.0
   */
  export interface Options<S extends SchemaRef.Any, KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>, E, R, T>
    extends Consumer.Consumer.BaseOptions<S, KC, T>
  {
    /** @default "message" */
    readonly delivery?: "message" | "batch" | undefined
    readonly handle: (
      payload: Payload<S, KC, T>,
      metadata: Consumer.Metadata<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>
    ) => Effect.Effect<Action, E, R>
    /** The dedup key of a message. @default the MD5 (hex) of the payload's canonical JSON */
    readonly dedupKey?:
      | ((payload: Payload<S, KC, T>, metadata: Consumer.Metadata<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>) => string)
      | undefined
    /** Retries of a failing message before it becomes a failure row (with the default `retryConsume`). @default 3 */
    readonly maxRetries?: number | undefined
    /**
     * Whether to try a failed attempt again (`metadata.retryCount` is the retries so far).
     * @default retryCount < maxRetries
     */
    readonly retryConsume?:
      | ((
        payload: Payload<S, KC, T>,
        metadata: Consumer.Metadata<KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>,
        error: ErrorPolicy.Failure<E | DatabaseError>
      ) => boolean)
      | undefined
    /** The wait before retry `n` (0-based) is `min * 2^n`, at most `max`. @default 1 second to 60 seconds */
    readonly backoff?: {
      readonly min?: Duration.DurationInput | undefined
      readonly max?: Duration.DurationInput | undefined
    } | undefined
    /** Where the checkpoint tables are. @default the search path's, no prefix */
    readonly tables?: Tables.Naming | undefined
  }

  /**
   * The payload a handler receives.
   *
   * @since 0.1.0
   */
  export type Payload<S extends SchemaRef.Any, KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>, T> = Consumer.Payload<
    SchemaRef.Type<S>,
    KeyConfig.KeyOf<SchemaRef.Type<S>, KC>,
    T extends true ? true : false
  >
}

type Payload<S extends SchemaRef.Any, KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>, T> = Checkpoint.Payload<
  S,
  KC,
  T
>

/**
 * A checkpointed consumer: a core consumer definition (run it with `Consumers.layer`, test it with the test
 * helpers) whose handler claims, handles and records each message as described above. Its handler fails only when
 * a failure row cannot be stored (a `DatabaseError`), which its error policy retries with the settings' backoff.
 *
 * @since 0.1.0
 */
export interface Checkpoint<A, K, E, R, P>
  extends Consumer.MessageConsumer<A, K, DatabaseError, R | Database.Database, P>
{
  readonly [TypeId]: { readonly _E: (_: never) => E }
  readonly naming: Tables.Naming
  /** One message as the consumer handles it: claimed, handled, retried, recorded; answers what happened. */
  readonly consume: (
    payload: P,
    metadata: Consumer.Metadata<K>
  ) => Effect.Effect<Outcome, DatabaseError, R | Database.Database>
  /**
   * Runs the handler again for the failure `id` in one transaction: an ack stores the event, and the failure is
   * deleted (a skip deletes it too; answers whether an event was stored). The handler failing again rolls
   * everything back and fails with `RetryError` (`HandlerFailed`).
   */
  readonly retryFailure: (
    id: string
  ) => Effect.Effect<
    { readonly acknowledged: boolean },
    CheckpointError.NotFound | CheckpointError.RetryError | DatabaseError,
    R | Database.Database
  >
}

/**
 * Any checkpoint.
 *
 * @since 0.1.0
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Any = Checkpoint<any, any, any, any, any>

/**
 * What a checkpoint's handler needs.
 *
 * @since 0.1.0
 */
export type Requirements<C> = C extends Checkpoint<infer _A, infer _K, infer _E, infer R, infer _P> ? R : never

/**
 * Whether a value is a checkpoint.
 *
 * @since 0.1.0
 */
export const isCheckpoint = (u: unknown): u is Any => typeof u === "object" && u !== null && TypeId in u

const messageOf = (failure: unknown): string => {
  if (typeof failure === "object" && failure !== null) {
    if ("_tag" in failure && failure._tag === "Defect" && "defect" in failure) return messageOf(failure.defect)
    if ("message" in failure && typeof failure.message === "string" && failure.message.length > 0) {
      return failure.message
    }
  }
  return String(failure)
}

const storedMetadata = <K>(metadata: Consumer.Metadata<K>): Tables.StoredMetadata => ({
  consumer: metadata.consumer,
  partition: metadata.partition,
  offset: metadata.offset,
  key: Json.toJson(metadata.key),
  headers: metadata.headers,
  timestamp: metadata.timestamp.toISOString(),
  retryCount: metadata.retryCount
})

const restoredPayload = (json: unknown): unknown => {
  const payload = Json.fromJson(json)
  // a tombstone's marker is a symbol, which JSON does not keep
  if (
    typeof payload === "object" && payload !== null && "_tag" in payload && payload._tag === "Tombstone" &&
    "key" in payload && Object.keys(payload).length === 2
  ) return Tombstone.make(payload.key)
  return payload
}

const waitToRetry = (wait: Duration.Duration) =>
  Effect.raceFirst(
    Effect.sleep(wait),
    Effect.flatMap(ErrorPolicy.Stopping, (stopping) => Effect.zipRight(stopping, Effect.interrupt))
  )

/**
 * Defines a checkpointed consumer. Throws `ConsumerDefinitionError` for a definition without topic or group.
 *
 * @since 0.1.0
 */
export const make = <
  S extends SchemaRef.Any,
  const KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
  E = never,
  R = never,
  T extends boolean = false
>(
  options: Checkpoint.Options<S, KC, E, R, T>
): Checkpoint<
  SchemaRef.Type<S>,
  KeyConfig.KeyOf<SchemaRef.Type<S>, KC>,
  E,
  R,
  Payload<S, KC, T>
> => {
  type P = Payload<S, KC, T>
  type K = KeyConfig.KeyOf<SchemaRef.Type<S>, KC>
  type M = Consumer.Metadata<K>
  const {
    backoff: backoffOptions,
    dedupKey,
    handle,
    maxRetries: maxRetriesOption,
    retryConsume,
    tables: naming = {},
    ...consumerOptions
  } = options
  const { events, failures } = Tables.tables(naming)
  const maxRetries = maxRetriesOption ?? 3
  const min = Duration.decode(backoffOptions?.min ?? "1 second")
  const max = Duration.decode(backoffOptions?.max ?? "60 seconds")
  const delay = (retry: number) => Duration.min(max, Duration.times(min, Math.pow(2, Math.min(retry, 40))))
  const keyOf = (payload: P, metadata: M) =>
    dedupKey === undefined ? Json.checksum(payload) : dedupKey(payload, metadata)

  const subjectOf = (metadata: M, checksum: string): Instrumentation.Subject => ({
    consumer: metadata.consumer,
    groupId: options.groupId,
    topic: metadata.topic,
    key: metadata.key,
    partition: metadata.partition,
    offset: metadata.offset,
    retryCount: metadata.retryCount,
    checksum
  })

  /** Claims the message: its event row, unless one is there; answers the row's id. */
  const claim = (topic: string, checksum: string, payload: P) =>
    Effect.map(
      Database.use((db) =>
        db.insert(events).values({ topic, groupId: options.groupId, checksum, payload: Json.toJson(payload) })
          .onConflictDoNothing({ target: [events.topic, events.groupId, events.checksum] })
          .returning({ id: events.id })
      ),
      (rows) => rows.length === 0 ? undefined : rows[0].id
    )

  /** The handler on a claimed message, in the claim's transaction: completes or removes the event row. */
  const handleClaimed = (id: bigint, payload: P, metadata: M, subject: Instrumentation.Subject) =>
    Effect.gen(function*() {
      const action = yield* handle(payload, metadata)
      yield* Instrumentation.emit({ _tag: "EventAction", subject, action: action._tag === "Ack" ? "ack" : "skip" })
      if (action._tag === "Ack") {
        yield* Database.use((db) =>
          db.update(events).set({
            entityId: action.entityId,
            eventTime: action.eventTime,
            eventType: action.eventType ?? null,
            eventVersion: action.eventVersion ?? null
          }).where(eq(events.id, id))
        )
        return action
      }
      yield* Database.use((db) => db.delete(events).where(eq(events.id, id)))
      return action
    })

  /** One attempt: one transaction. */
  const attempt = (payload: P, metadata: M, checksum: string) => {
    const subject = subjectOf(metadata, checksum)
    return Database.transaction(Effect.gen(function*() {
      yield* Instrumentation.emit({ _tag: "EventAlreadyExistsCheck", subject })
      const id = yield* claim(metadata.topic, checksum, payload)
      if (id === undefined) return undefined
      return yield* handleClaimed(id, payload, metadata, subject)
    })).pipe(
      Effect.tap((action) =>
        action === undefined
          ? Instrumentation.emit({ _tag: "EventAlreadyConsumed", subject })
          : action._tag === "Ack"
          ? Instrumentation.emit({ _tag: "EventAcknowledged", subject, entityId: action.entityId })
          : Instrumentation.emit({ _tag: "EventSkipped", subject })
      ),
      Effect.map((action): Outcome =>
        action === undefined ? "alreadyConsumed" : action._tag === "Ack" ? "acknowledged" : "skipped"
      )
    )
  }

  const recordFailure = (payload: P, metadata: M, checksum: string, cause: Cause.Cause<unknown>) =>
    Effect.gen(function*() {
      const error = ErrorPolicy.failureOf(cause)
      const rows = yield* Database.use((db) =>
        db.insert(failures).values({
          topic: metadata.topic,
          groupId: options.groupId,
          checksum,
          payload: Json.toJson(payload),
          metadata: storedMetadata(metadata),
          errorClass: ErrorPolicy.tagOf(cause),
          errorMessage: messageOf(error),
          errorBacktrace: Cause.pretty(cause, { renderErrorCause: true })
        }).returning({ id: failures.id })
      )
      const failureId = String(rows[0].id)
      yield* Effect.logError("Checkpointed message failed after its retries; stored as a failure", cause).pipe(
        Effect.annotateLogs({
          consumer: metadata.consumer,
          topic: metadata.topic,
          partition: metadata.partition,
          offset: metadata.offset,
          failureId
        })
      )
      yield* Instrumentation.emit({ _tag: "EventFailed", subject: subjectOf(metadata, checksum), failureId, error })
    })

  const consume = (payload: P, received: M): Effect.Effect<Outcome, DatabaseError, R | Database.Database> => {
    const checksum = keyOf(payload, received)
    const loop = (retryCount: number): Effect.Effect<Outcome, DatabaseError, R | Database.Database> => {
      const metadata: M = retryCount === received.retryCount ? received : { ...received, retryCount }
      return Effect.catchAllCause(attempt(payload, metadata, checksum), (cause) => {
        if (Cause.isInterrupted(cause)) return Effect.failCause(cause as Cause.Cause<never>)
        const error = ErrorPolicy.failureOf(cause) as ErrorPolicy.Failure<E | DatabaseError>
        const again = retryConsume === undefined
          ? retryCount < maxRetries
          : retryConsume(payload, metadata, error)
        if (!again) return Effect.as(recordFailure(payload, metadata, checksum, cause), "failed" as const)
        const wait = delay(retryCount)
        return Effect.logWarning(`Checkpointed handler failed; retrying in ${Duration.format(wait)}`, cause).pipe(
          Effect.annotateLogs({ consumer: metadata.consumer, topic: metadata.topic, offset: metadata.offset }),
          Effect.zipRight(Instrumentation.emit({
            _tag: "EventRetried",
            subject: subjectOf(metadata, checksum),
            waitMillis: Duration.toMillis(wait),
            error
          })),
          Effect.zipRight(waitToRetry(wait)),
          Effect.zipRight(Effect.suspend(() => loop(retryCount + 1)))
        )
      })
    }
    return Effect.withSpan(loop(0), "checkpoint.around_consume", {
      kind: "consumer",
      captureStackTrace: false,
      attributes: { consumer: received.consumer, topic: received.topic, offset: received.offset, checksum }
    })
  }

  const retryFailure = (id: string) =>
    Effect.gen(function*() {
      const notFound = new CheckpointError.NotFound({ kind: "failure", id, message: "failure not found" })
      if (!/^\d{1,19}$/.test(id)) return yield* notFound
      const outcome = yield* Database.transaction(Effect.gen(function*() {
        // locked, so that two retries of one failure do not both run the handler
        const rows = yield* Database.use((db) =>
          db.select().from(failures).where(eq(failures.id, BigInt(id))).for("update")
        )
        if (rows.length === 0) return yield* notFound
        const failure = rows[0]
        const stored = failure.metadata
        const payload = restoredPayload(failure.payload) as P
        const metadata: M = {
          consumer: stored.consumer,
          topic: failure.topic,
          partition: stored.partition,
          offset: stored.offset,
          key: Json.fromJson(stored.key) as K | null,
          headers: stored.headers,
          timestamp: new Date(stored.timestamp),
          retryCount: stored.retryCount + 1
        }
        const subject = subjectOf(metadata, failure.checksum)
        const claimed = yield* claim(failure.topic, failure.checksum, payload)
        const action = claimed === undefined ?
          undefined :
          yield* handleClaimed(claimed, payload, metadata, subject).pipe(
            Effect.catchAllCause((cause) =>
              Cause.isInterrupted(cause) ? Effect.failCause(cause as Cause.Cause<never>) : Effect.fail(
                new CheckpointError.RetryError({
                  reason: "HandlerFailed",
                  failureId: id,
                  message: `The handler failed again: ${messageOf(ErrorPolicy.failureOf(cause))}`,
                  cause
                })
              )
            )
          )
        yield* Database.use((db) => db.delete(failures).where(eq(failures.id, failure.id)))
        return { action, subject }
      }))
      if (outcome.action === undefined) {
        yield* Instrumentation.emit({ _tag: "EventAlreadyConsumed", subject: outcome.subject })
        return { acknowledged: true }
      }
      if (outcome.action._tag === "Ack") {
        yield* Instrumentation.emit({
          _tag: "EventAcknowledged",
          subject: outcome.subject,
          entityId: outcome.action.entityId
        })
        return { acknowledged: true }
      }
      yield* Instrumentation.emit({ _tag: "EventSkipped", subject: outcome.subject })
      return { acknowledged: false }
    })

  const consumer = ConsumerModule.make({
    ...consumerOptions,
    handle: (payload: P, metadata: M) => Effect.asVoid(consume(payload, metadata)),
    // only storing a failure row can fail: tried again (with the settings' backoff) until the database is back
    errorPolicy: { retryOn: ["DatabaseError"] }
  } as unknown as Consumer.Consumer.MessageOptions<S, KC, DatabaseError, R | Database.Database, T, "DatabaseError">)
  return {
    ...consumer,
    [TypeId]: { _E: (_: never) => _ },
    naming,
    consume,
    retryFailure
  } as unknown as Checkpoint<SchemaRef.Type<S>, K, E, R, P>
}

/**
 * Finds the checkpoint of a stored failure (by its consumer's name) and retries the failure with it.
 *
 * @since 0.1.0
 */
export const retryFailure = <const Cs extends ReadonlyArray<Any>>(
  checkpoints: Cs,
  id: string,
  naming: Tables.Naming = {}
): Effect.Effect<
  { readonly acknowledged: boolean },
  CheckpointError.NotFound | CheckpointError.RetryError | DatabaseError,
  Requirements<Cs[number]> | Database.Database
> =>
  Effect.gen(function*() {
    const { failures } = Tables.tables(naming)
    const notFound = new CheckpointError.NotFound({ kind: "failure", id, message: "failure not found" })
    if (!/^\d{1,19}$/.test(id)) return yield* notFound
    const rows = yield* Database.use((db) =>
      db.select({ groupId: failures.groupId, metadata: failures.metadata }).from(failures).where(
        eq(failures.id, BigInt(id))
      )
    )
    if (rows.length === 0) return yield* notFound
    const { groupId, metadata } = rows[0]
    const checkpoint = checkpoints.find((c) => c.name === metadata.consumer && c.groupId === groupId)
    if (checkpoint === undefined) {
      return yield* new CheckpointError.RetryError({
        reason: "NoCheckpoint",
        failureId: id,
        message: `No checkpoint of consumer ${metadata.consumer} (group ${groupId}) is registered to retry it`
      })
    }
    return yield* (checkpoint.retryFailure(id) as Effect.Effect<
      { readonly acknowledged: boolean },
      CheckpointError.NotFound | CheckpointError.RetryError | DatabaseError,
      Requirements<Cs[number]> | Database.Database
    >)
  })

/**
 * @since 0.1.0
 */
export interface SweepOptions {
  /** Events older than this (by `created_at`) are deleted; the dedup window. */
  readonly maxAge: Duration.DurationInput
  /** Rows deleted per statement. @default 1000 */
  readonly batchSize?: number | undefined
  /** Where the checkpoint tables are. @default the search path's, no prefix */
  readonly tables?: Tables.Naming | undefined
}

/**
 * Deletes the events older than `maxAge`, `batchSize` rows per statement (each its own short transaction) until
 * none is left; answers how many it deleted.
 *
 * @since 0.1.0
 */
export const sweep = (options: SweepOptions): Effect.Effect<number, DatabaseError, Database.Database> => {
  const { events } = Tables.tables(options.tables)
  const batchSize = Math.max(1, options.batchSize ?? 1000)
  const seconds = Duration.toSeconds(Duration.decode(options.maxAge))
  const cutoff = sql`now() - make_interval(secs => ${seconds})`
  const batch = Database.use((db) =>
    db.delete(events).where(
      inArray(events.id, db.select({ id: events.id }).from(events).where(lt(events.createdAt, cutoff)).limit(batchSize))
    ).returning({ id: events.id })
  ).pipe(Effect.map((rows) => rows.length))
  const loop = (total: number): Effect.Effect<number, DatabaseError, Database.Database> =>
    Effect.flatMap(batch, (n) => n < batchSize ? Effect.succeed(total + n) : loop(total + n))
  return loop(0)
}

/**
 * @since 0.1.0
 */
export interface SweeperOptions extends SweepOptions {
  /** How often to sweep. @default 1 hour */
  readonly interval?: Duration.DurationInput | undefined
}

/**
 * Sweeps every `interval` (the first at once) in a fiber of the scope; a sweep that fails is logged and the next
 * one runs on time. Closing the scope stops it.
 *
 * @since 0.1.0
 */
export const sweeper = (options: SweeperOptions): Effect.Effect<void, never, Database.Database | Scope.Scope> =>
  sweep(options).pipe(
    Effect.tap((n) => n > 0 ? Effect.logInfo(`Checkpoint sweeper deleted ${n} events`) : Effect.void),
    Effect.catchAll((error) => Effect.logWarning("Checkpoint sweep failed; trying again at the next interval", error)),
    Effect.repeat(Schedule.spaced(options.interval ?? "1 hour")),
    Effect.forkScoped,
    Effect.asVoid
  )

/**
 * The retention sweeper as a layer: its fiber runs while the layer's scope is open.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSweeper = (options: SweeperOptions): Layer.Layer<never, never, Database.Database> =>
  Layer.scopedDiscard(sweeper(options))
