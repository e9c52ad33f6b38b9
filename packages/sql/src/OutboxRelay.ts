/**
 * The outbox relay: ships the outbox's rows to Kafka, deleting them once the broker has acknowledged them
 * (acks = all). Many workers — fibers of one process, and processes — share a topic; per-key order is kept.
 *
 * Why it is correct. Each row carries a lane (a hash of its partition key modulo `Outbox.lanes`); the lease unit is
 * a topic's lane, a row of `kafka_topic_info`. A worker takes lanes with `UPDATE … FROM (SELECT … FOR UPDATE SKIP
 * LOCKED)` whose conditions are on the lease row itself (so a row another worker has just taken is checked again
 * and skipped): no two workers hold a lane. A worker sends the rows of its lanes in id order, one batch at a time,
 * the next only once the broker acknowledged the one before; messages with the same partition key are in the same
 * lane, so they are sent in the order their rows were committed (two transactions open at the same time are not
 * ordered with respect to each other, as in Kafka). Rows are deleted only after the broker acknowledged them; a
 * worker that dies holds its lanes until the lease timeout, after which another takes them over and sends what is
 * left, the unacknowledged batch again (at least once: duplicates at most one batch per worker). Before a batch is
 * sent, each of its lanes was renewed or taken less than half the lease timeout ago, or is checked in the database:
 * a lane lost to another worker is not sent. Errors of the broker or the database back the lanes off (`retry_at`,
 * so every worker skips them) and never delete a row, except a single message larger than the broker accepts,
 * which can never be sent: it is logged and reported (`OutboxDropped`), then removed.
 *
 * Sharing: every relay registers itself and its number of workers in `kafka_relays`; a worker holds at most its
 * share of a topic's lanes (the lanes over every live worker) and gives back what is over its share when relays
 * join.
 *
 * Wake-ups: the outbox backend notifies at each commit; the relay listens and also polls
 * (`pollInterval`), so a lost notification (or PGlite in another process) only delays.
 *
 * @since 0.1.0
 */
import { Background, Instrumentation, type ProducerBackend, type ProducerError } from "@deimos/core"
import { type KafkaDriver, KafkaError, KafkaProducerBackend } from "@deimos/kafka"
import { sql } from "drizzle-orm"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Database from "./Database.js"
import { DatabaseError } from "./DatabaseError.js"
import { boundHeapGrowth } from "./internal/heap.js"
import * as Outbox from "./Outbox.js"

/**
 * @since 0.1.0
 */
export interface Options extends Outbox.Naming {
  /** Workers (fibers) of this relay, each holding its share of a topic's lanes. @default 4 */
  readonly concurrency?: number | undefined
  /** Rows per batch. @default 1000 */
  readonly batchSize?: number | undefined
  /** A lane whose worker has not renewed its lease this long is taken over. @default 30 seconds */
  readonly leaseTimeout?: Duration.DurationInput | undefined
  /** How often to look for work when no notification came. @default 1 second */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** Topics whose batches keep only the last message per key (compacted topics). @default none */
  readonly compactTopics?: ReadonlyArray<string> | undefined
  /**
   * How long a lane that failed waits: the schedule's delays, one per failure in a row (its last delay once it
   * ends). @default exponential from 1 second, at most 1 minute
   */
  readonly backoff?: Schedule.Schedule<unknown> | undefined
  /** How often `pending_db_messages_count` / `_max_wait` are measured. @default 10 seconds */
  readonly metricsInterval?: Duration.DurationInput | undefined
  /** The Kafka producer's options (acks = all is kept). */
  readonly producer?: KafkaProducerBackend.Options | undefined
  /** This relay's name in the lease table (its workers are `<name>/0`, `<name>/1`, …). @default a random UUID */
  readonly workerId?: string | undefined
}

/**
 * `db_producer.process{topic}`: rows read by the relay.
 *
 * @since 0.1.0
 */
export const processed = Metric.counter("db_producer.process", { description: "Outbox rows read by the relay" })

/**
 * `pending_db_messages_count{topic}`.
 *
 * @since 0.1.0
 */
export const pendingCount = Metric.gauge("pending_db_messages_count", { description: "Rows waiting in the outbox" })

/**
 * `pending_db_messages_max_wait{topic}`: seconds since the oldest pending row was written, or since the topic was
 * last processed when nothing is pending.
 *
 * @since 0.1.0
 */
export const pendingMaxWait = Metric.gauge("pending_db_messages_max_wait", {
  description: "Seconds the oldest outbox row has waited"
})

/** A row read: its id, its lane and the message to send, made once as the read parses it. */
interface Row {
  readonly id: string
  readonly lane: number
  readonly message: ProducerBackend.ProducerMessage
}

const bytesOf = (value: unknown): Uint8Array | null =>
  value === null || value === undefined
    ? null
    : value instanceof Uint8Array
    ? value
    // a bytea read as text (`\x…`), as some drivers do for raw queries
    : typeof value === "string" && value.startsWith("\\x")
    ? Buffer.from(value.slice(2), "hex")
    : null

const noHeaders: Record<string, string | Uint8Array> = Object.freeze({})

const headersOf = (stored: Record<string, Outbox.StoredHeader> | null): Record<string, string | Uint8Array> => {
  if (stored === null) return noHeaders
  const out: Record<string, string | Uint8Array> = {}
  for (const name in stored) {
    const value = stored[name]
    out[name] = typeof value === "string" ? value : Buffer.from(value.base64, "base64")
  }
  return out
}

/** A row of the outbox table as the relay reads it, to the row it sends. */
const rowOf = (r: Record<string, unknown>): Row => {
  const partitionKey = r.partition_key === null || r.partition_key === undefined ? null : String(r.partition_key)
  return {
    id: String(r.id),
    lane: Number(r.lane),
    message: {
      key: bytesOf(r.key),
      value: bytesOf(r.message),
      partitionKey,
      headers: headersOf((r.headers ?? null) as Record<string, Outbox.StoredHeader> | null),
      // the key as errors name it: its partition key (the key's text for the producers of this toolkit)
      rawKey: partitionKey,
      payload: null,
      producer: "outbox relay"
    }
  }
}

/**
 * What a batch sends: its rows, or on a compacted topic the last row per key (in the order of those last rows), with
 * the ids of the earlier rows of each kept row's key, deleted with it.
 */
interface Sending {
  readonly rows: ReadonlyArray<Row>
  readonly covers?: ReadonlyMap<Row, ReadonlyArray<string>> | undefined
}

const compacted = (rows: ReadonlyArray<Row>): Sending => {
  const last = new Map<string, Row>()
  const covers = new Map<Row, Array<string>>()
  const kept: Array<Row> = []
  for (let i = rows.length - 1; i >= 0; i--) {
    const row = rows[i]
    const bytes = row.message.key
    const key = bytes === null ? undefined : Buffer.from(bytes).toString("base64")
    const later = key === undefined ? undefined : last.get(key)
    if (later !== undefined) {
      const ids = covers.get(later)
      if (ids === undefined) covers.set(later, [row.id])
      else ids.push(row.id)
      continue
    }
    if (key !== undefined) last.set(key, row)
    kept.push(row)
  }
  return { rows: kept.reverse(), covers }
}

const defaultBackoff: Schedule.Schedule<unknown> = Schedule.exponential("1 second").pipe(
  Schedule.union(Schedule.spaced("1 minute"))
)

/** The delay of the `retries`-th failure in a row (1-based) by a schedule, its last delay once it ends. */
const delayOf = (schedule: Schedule.Schedule<unknown>, retries: number): Effect.Effect<Duration.Duration> =>
  Effect.map(
    Schedule.run(Schedule.delays(schedule), Date.now(), Array.from({ length: Math.max(1, retries) }, () => undefined)),
    (delays) => Option.getOrElse(Chunk.last(delays), () => Duration.seconds(1))
  )

const tooLarge = (error: ProducerError.ProducerError) =>
  error.cause instanceof KafkaError.KafkaError && KafkaError.isTooLarge(error.cause)

/** A Postgres array literal of numbers (ids are digits only, as read from the table). */
const arrayOf = (values: ReadonlyArray<string | number>) => `{${values.join(",")}}`

/**
 * The relay's loops, until interrupted (the scope closing): in-flight batches finish, leases are given back.
 *
 * @since 0.1.0
 */
export const run = (
  options: Options = {}
): Effect.Effect<never, DatabaseError | KafkaError.KafkaError, Database.Database | KafkaDriver.KafkaDriver> =>
  Effect.scoped(Effect.gen(function*() {
    const database = yield* Database.Database
    const names = Outbox.namesOf(options)
    const relayId = options.workerId ?? globalThis.crypto.randomUUID()
    const concurrency = Math.max(1, options.concurrency ?? 4)
    const batchSize = Math.max(1, options.batchSize ?? 1000)
    const leaseTimeout = Duration.decode(options.leaseTimeout ?? "30 seconds")
    const leaseSeconds = Duration.toSeconds(leaseTimeout)
    const heartbeat = Duration.millis(Math.max(10, Duration.toMillis(leaseTimeout) / 3))
    const pollInterval = Duration.decode(options.pollInterval ?? "1 second")
    const compactTopics = new Set(options.compactTopics ?? [])
    const backoff = options.backoff ?? defaultBackoff
    const producer = yield* KafkaProducerBackend.make({ ...options.producer, acks: -1 })
    // the text of every query here is fixed for the relay's life (only parameters change): prepared statements
    const exec = (query: ReturnType<typeof sql>) => database.execute(query, { prepare: true })
    const raw = sql.raw
    const messagesTable = raw(names.messages)
    const topicInfo = raw(names.topicInfo)
    const relaysTable = raw(names.relays)

    // wake-ups: a notification or the poll interval completes the current signal, and a new one is made
    const signal = yield* Ref.make(yield* Deferred.make<void>())
    const wake = Effect.flatMap(
      Deferred.make<void>(),
      (next) => Effect.flatMap(Ref.getAndSet(signal, next), (current) => Deferred.succeed(current, undefined))
    )
    const woken = Effect.flatMap(Ref.get(signal), Deferred.await)

    /**
     * The share of a topic's lanes one worker takes: the lanes over every worker of every running relay (each
     * registers itself and its number of workers, and renews that with its leases), so that relays that join take
     * their part as the others give lanes back.
     */
    const share = yield* Ref.make(Math.ceil(Outbox.lanes / concurrency))
    const register = exec(sql`
      with me as (
        insert into ${relaysTable} (relay, workers, seen_at) values (${relayId}, ${concurrency}, now())
        on conflict (relay) do update set workers = excluded.workers, seen_at = now()
      ), gone as (
        delete from ${relaysTable} where seen_at < now() - make_interval(secs => ${leaseSeconds * 100})
      )
      select coalesce(sum(workers), 0)::int as workers from ${relaysTable}
      where relay <> ${relayId} and seen_at > now() - make_interval(secs => ${leaseSeconds})`).pipe(
      Effect.flatMap((rows) =>
        Ref.set(share, Math.max(1, Math.ceil(Outbox.lanes / (concurrency + Number(rows[0]?.workers ?? 0)))))
      )
    )
    /**
     * The last renewal of every lease of this relay: when it began, and the leases it renewed. A lease renewed (or
     * taken) less than half the lease timeout ago cannot have been taken over: it is sent without asking again.
     */
    const renewal = yield* Ref.make<{ readonly at: number; readonly held: ReadonlySet<string> }>({
      at: Number.NEGATIVE_INFINITY,
      held: new Set()
    })
    const leaseKey = (worker: string, topic: string, lane: number) => `${worker}\u0000${topic}\u0000${lane}`
    const renewAll = Effect.suspend(() => {
      const at = performance.now()
      return exec(sql`update ${topicInfo} set locked_at = now() where starts_with(locked_by, ${`${relayId}/`})
        returning locked_by, topic, lane`).pipe(
        Effect.flatMap((rows) =>
          Ref.set(renewal, {
            at,
            held: new Set(rows.map((r) => leaseKey(String(r.locked_by), String(r.topic), Number(r.lane))))
          })
        ),
        Effect.zipRight(register)
      )
    })
    const safeFor = Duration.toMillis(leaseTimeout) / 2

    /** Lease rows for the (topic, lane) pairs that have rows (a loose index scan of the outbox). */
    const discover = exec(sql`
      with recursive pairs as (
        (select topic, lane from ${messagesTable} order by topic, lane limit 1)
        union all
        select n.topic, n.lane from pairs p cross join lateral (
          select m.topic, m.lane from ${messagesTable} m
          where (m.topic, m.lane) > (p.topic, p.lane) order by m.topic, m.lane limit 1
        ) n
      )
      insert into ${topicInfo} (topic, lane) select topic, lane from pairs on conflict do nothing`)

    /**
     * Takes up to `count` free (or abandoned) lanes that have rows and are not backing off, for the worker `me`:
     * of `topic`, or of the topic whose free lane was processed the longest time ago.
     */
    /** A lease row `l` a worker may take: free or abandoned, not backing off, its lane has rows. */
    const takeable = sql`(l.locked_by is null or l.locked_at < now() - make_interval(secs => ${leaseSeconds}))
      and (l.retry_at is null or l.retry_at <= now())
      and exists (select 1 from ${messagesTable} m where m.topic = l.topic and m.lane = l.lane)`
    const acquire = (me: string, topic: string | undefined, count: number) =>
      Effect.map(
        exec(sql`
          with chosen as (
            select coalesce(${topic ?? null}::text, (
              select l.topic from ${topicInfo} l where ${takeable}
              order by l.last_processed_at nulls first limit 1
            )) as topic
          ),
          -- the conditions on the lease row itself, so that they are checked again on a row another worker has
          -- just taken (and committed): it is skipped, never taken twice
          taken as (
            select l.topic, l.lane from ${topicInfo} l
            where l.topic = (select topic from chosen) and ${takeable}
            order by l.last_processed_at nulls first
            limit ${count}
            for update of l skip locked
          )
          update ${topicInfo} t set locked_by = ${me}, locked_at = now()
          from taken where t.topic = taken.topic and t.lane = taken.lane
          returning t.topic, t.lane`),
        (rows) => ({
          topic: rows.length === 0 ? undefined : String(rows[0].topic),
          lanes: rows.map((r) => Number(r.lane))
        })
      )

    /** Renews the leases of `lanes` and answers those the worker still holds (a lane taken over is not sent). */
    const renew = (me: string, topic: string, lanes: ReadonlyArray<number>) =>
      Effect.map(
        exec(sql`update ${topicInfo} set locked_at = now()
          where topic = ${topic} and lane = any(${arrayOf(lanes)}::int[]) and locked_by = ${me} returning lane`),
        (rows) => new Set(rows.map((r) => Number(r.lane)))
      )

    /** Gives lanes back: after a success, or after a failure with them backed off by their failures in a row. */
    const release = (me: string, topic: string, lanes: ReadonlyArray<number>, failure?: unknown) =>
      lanes.length === 0 ? Effect.void : failure === undefined ?
        Effect.asVoid(exec(sql`update ${topicInfo}
          set locked_by = null, error = false, retries = 0, retry_at = null, last_processed_at = now()
          where topic = ${topic} and lane = any(${arrayOf(lanes)}::int[]) and locked_by = ${me}`)) :
        Effect.gen(function*() {
          const rows = yield* exec(sql`update ${topicInfo} set error = true, retries = retries + 1
            where topic = ${topic} and lane = any(${arrayOf(lanes)}::int[]) and locked_by = ${me}
            returning retries`)
          const retries = rows.reduce((most, r) => Math.max(most, Number(r.retries)), 1)
          const delay = yield* delayOf(backoff, retries)
          yield* Effect.logWarning(
            `The outbox topic ${topic} failed to send (lanes ${lanes.join(", ")}) and backs off for ${
              Duration.format(delay)
            }`,
            failure
          ).pipe(Effect.annotateLogs({ topic, retries }))
          yield* exec(sql`update ${topicInfo}
            set locked_by = null, retry_at = now() + make_interval(secs => ${Duration.toSeconds(delay)})
            where topic = ${topic} and lane = any(${arrayOf(lanes)}::int[]) and locked_by = ${me}`)
        })

    /**
     * The oldest rows of `lanes` after the row `after` (an id), at most `batchSize`, in id order: as the rows were
     * committed, so a batch takes heap pages in turn (a worker with every lane reads what Deimos reads).
     */
    const read = (topic: string, lanes: ReadonlyArray<number>, after: string) =>
      Effect.map(
        // `m.id`, qualified: a bare `id` would order by the text column of the same name, "10" before "9"
        exec(sql`
          select m.id::text as id, m.lane, m.key, m.message, m.partition_key, m.headers from ${messagesTable} m
          where m.topic = ${topic} and m.lane = any(${arrayOf(lanes)}::int[]) and m.id > ${after}::bigint
          order by m.id limit ${batchSize}`),
        (rows): ReadonlyArray<Row> => rows.map(rowOf)
      )

    const remove = (ids: ReadonlyArray<string>) =>
      ids.length === 0 ? Effect.void : Effect.asVoid(
        exec(sql`delete from ${messagesTable} where id = any(${arrayOf(ids)}::bigint[])`)
      )

    /**
     * Sends a batch in order (acks = all) and deletes what the broker took; answers the error to back off with, if
     * any. A request the broker finds too large is cut in ten, repeatedly, and only what was not sent yet is sent
     * again; a single message it refuses as too large can never be sent and is removed and reported.
     */
    const ship = (me: string, topic: string, rows: ReadonlyArray<Row>) =>
      Effect.gen(function*() {
        yield* Metric.incrementBy(Metric.tagged(processed, "topic", topic), rows.length)
        const sending: Sending = compactTopics.has(topic) ? compacted(rows) : { rows }
        const messages = sending.rows.map((row) => row.message)
        let done = 0 // messages sent or dropped
        let part = messages.length
        let failure: ProducerError.ProducerError | undefined
        while (done < messages.length) {
          const request = messages.slice(done, done + part)
          const sent = yield* Effect.either(producer.execute(topic, request, { sync: true }))
          if (sent._tag === "Right") {
            done += request.length
            continue
          }
          const error = sent.left
          done += request.length - (error.failedCount ?? request.length)
          if (!tooLarge(error)) {
            failure = error
            break
          }
          if (part > 1) {
            part = Math.ceil(part / 10)
            continue
          }
          const dropped = sending.rows[done]
          yield* Effect.logError(`An outbox row of ${topic} can never be sent and is removed: ${error.message}`).pipe(
            Effect.annotateLogs({ topic, lane: dropped.lane, id: dropped.id })
          )
          yield* Instrumentation.emit({ _tag: "OutboxDropped", topic, lane: dropped.lane, ids: [dropped.id], error })
          done++
        }
        const handled = sending.rows.slice(0, done)
        const ids = handled.map((row) => row.id)
        if (sending.covers !== undefined) {
          for (const row of handled) ids.push(...(sending.covers.get(row) ?? []))
        }
        yield* remove(ids)
        if (done > 0) {
          const lanes = [...new Set(handled.map((row) => row.lane))]
          yield* Instrumentation.emit({ _tag: "OutboxProduce", worker: me, topic, lanes, count: done })
        }
        return failure
      }).pipe(Effect.withSpan("deimos-outbox-relay", { attributes: { topic }, captureStackTrace: false }))

    const stopping = yield* Ref.make(false)

    /**
     * A worker: holds up to its share of one topic's lanes (taking more as lanes with rows come free), reads the
     * next batch across them while the one before is being sent, and sends it once that one is acknowledged. It
     * gives every lane back when they are all empty, and waits for a wake-up when none is free with rows.
     */
    const worker = (me: string) =>
      Effect.gen(function*() {
        let topic: string | undefined
        let held: Array<number> = []
        let next: Fiber.Fiber<ReadonlyArray<Row>, DatabaseError> | undefined
        /** The last row sent of the batch before, while batches follow each other (the next is read after it). */
        let after = "0"
        /** When each held lane was taken or last renewed by this worker itself. */
        const taken = new Map<number, number>()
        const giveBack = (failure?: unknown) =>
          Effect.suspend(() => {
            const [of, lanes] = [topic, held]
            topic = undefined
            held = []
            after = "0"
            taken.clear()
            return of === undefined ? Effect.void : release(me, of, lanes, failure)
          })
        /** The lanes of `lanes` still held: those not renewed lately are renewed (and dropped when taken over). */
        const holding = (of: string, lanes: ReadonlyArray<number>) =>
          Effect.gen(function*() {
            const last = yield* Ref.get(renewal)
            const at = performance.now()
            const unsure = lanes.filter((lane) => {
              const own = taken.get(lane) ?? Number.NEGATIVE_INFINITY
              const since = Math.max(own, last.held.has(leaseKey(me, of, lane)) ? last.at : Number.NEGATIVE_INFINITY)
              return at - since > safeFor
            })
            if (unsure.length === 0) return undefined
            const renewed = yield* renew(me, of, unsure)
            for (const lane of unsure) {
              if (renewed.has(lane)) taken.set(lane, at)
            }
            return new Set(unsure.filter((lane) => !renewed.has(lane)))
          })
        return yield* Effect.gen(function*() {
          while (!(yield* Ref.get(stopping))) {
            const wanted = (yield* Ref.get(share)) - held.length
            if (wanted < 0 && topic !== undefined) {
              // more relays or workers than when these lanes were taken: the lanes over the share go back
              const extra = held.slice(wanted)
              held = held.slice(0, wanted)
              for (const lane of extra) taken.delete(lane)
              yield* release(me, topic, extra)
            }
            if (next === undefined && wanted > 0) {
              const at = performance.now()
              const more = yield* acquire(me, topic, wanted)
              if (more.topic !== undefined) topic = more.topic
              for (const lane of more.lanes) taken.set(lane, at)
              held = [...held, ...more.lanes]
              // a lane taken now is read from its oldest row: none of its rows may be passed over
              if (more.lanes.length > 0) after = "0"
            }
            if (held.length === 0 || topic === undefined) {
              topic = undefined
              yield* Effect.raceFirst(woken, Effect.sleep(pollInterval))
              continue
            }
            const rows = next === undefined ? yield* read(topic, held, after) : yield* Fiber.join(next)
            next = undefined
            if (rows.length === 0) {
              yield* giveBack()
              continue
            }
            // only lanes still held: not those given back since the read, nor those taken over by another worker
            // (after this one's lease ran out)
            const mine = new Set(held)
            const lost = yield* holding(topic, [...new Set(rows.map((row) => row.lane))].filter((l) => mine.has(l)))
            if (lost !== undefined && lost.size > 0) {
              held = held.filter((lane) => !lost.has(lane))
              for (const lane of lost) taken.delete(lane)
            }
            const batch = rows.filter((row) => mine.has(row.lane) && (lost === undefined || !lost.has(row.lane)))
            if (batch.length === 0) continue
            after = rows[rows.length - 1].id
            if (rows.length >= batchSize) next = yield* Effect.fork(read(topic, held, after))
            // a batch runs to its end once begun (send, then delete): a stop waits for it
            const failure = yield* Effect.uninterruptible(ship(me, topic, batch))
            if (failure !== undefined) {
              if (next !== undefined) yield* Fiber.interrupt(next)
              next = undefined
              yield* giveBack(failure)
            } else if (next === undefined) {
              // read from the oldest row again: a row committed late with a smaller id is not left behind
              after = "0"
            }
          }
        }).pipe(
          Effect.ensuring(Effect.suspend(() => next === undefined ? Effect.void : Fiber.interrupt(next))),
          Effect.ensuring(Effect.ignore(giveBack())),
          // the database away: every lane given back (the rows stay), then the worker tries again
          Effect.catchAll((error) =>
            Effect.zipRight(
              Effect.logWarning("The outbox relay cannot reach the database; trying again", error),
              Effect.sleep(pollInterval)
            )
          ),
          Effect.forever
        )
      })

    // every lease of this relay is given back when it stops, and its registration removed
    yield* Effect.addFinalizer(() =>
      Effect.ignore(Effect.zipRight(
        exec(sql`update ${topicInfo} set locked_by = null where starts_with(locked_by, ${`${relayId}/`})`),
        exec(sql`delete from ${relaysTable} where relay = ${relayId}`)
      ))
    )
    yield* Effect.addFinalizer(() => Ref.set(stopping, true))

    const notifications = yield* database.listen(names.channel).pipe(
      Effect.catchAll((error) =>
        Effect.as(
          Effect.logWarning("The outbox relay cannot listen; it polls only", error),
          Stream.never as Stream.Stream<string>
        )
      )
    )
    // a notification wakes the workers (the outbox backend makes a topic's lease rows with its first rows); lanes
    // that have rows and no lease row (rows written some other way) are looked for at each poll
    const wakeUps = notifications.pipe(Stream.runForEach(() => wake))
    const discoverer = discover.pipe(
      Effect.zipRight(wake),
      Effect.catchAll((error) => Effect.logWarning("The outbox relay could not look for new lanes", error)),
      Effect.repeat(Schedule.spaced(pollInterval))
    )
    const heartbeats = renewAll.pipe(
      Effect.catchAll((error) => Effect.logWarning("The outbox relay could not renew its leases", error)),
      Effect.repeat(Schedule.spaced(heartbeat))
    )

    const measure = exec(sql`
      select t.topic, coalesce(m.pending, 0)::bigint as pending,
        coalesce(extract(epoch from now() - m.oldest), extract(epoch from now() - t.processed), 0)::float8 as wait
      from (select topic, max(last_processed_at) as processed from ${topicInfo} group by topic) t
      left join (
        select topic, count(*) as pending, min(created_at) as oldest from ${messagesTable} group by topic
      ) m on m.topic = t.topic`).pipe(
      Effect.flatMap((rows) =>
        Effect.forEach(rows, (row) => {
          const topic = String(row.topic)
          return Effect.zipRight(
            Metric.set(Metric.tagged(pendingCount, "topic", topic), Number(row.pending)),
            Metric.set(Metric.tagged(pendingMaxWait, "topic", topic), Number(row.wait))
          )
        }, { discard: true })
      ),
      Effect.catchAll((error) => Effect.logWarning("The outbox relay could not measure the backlog", error)),
      Effect.repeat(Schedule.spaced(options.metricsInterval ?? "10 seconds"))
    )

    // the tables missing: say how to make them
    yield* register.pipe(
      Effect.mapError((error) =>
        error.code === "42P01"
          ? new DatabaseError({
            ...error,
            message: `${error.message}: the outbox tables are not there; apply Outbox.migrations ` +
              "(the worker does with OUTBOX_MIGRATE=true)"
          })
          : error
      )
    )
    yield* Effect.forkScoped(wakeUps)
    yield* Effect.forkScoped(discoverer)
    yield* Effect.forkScoped(heartbeats)
    yield* Effect.forkScoped(measure)
    yield* Effect.logInfo("Outbox relay started").pipe(Effect.annotateLogs({ relay: relayId, workers: concurrency }))
    return yield* Effect.all(Array.from({ length: concurrency }, (_, i) => worker(`${relayId}/${i}`)), {
      concurrency: "unbounded",
      discard: true
    }).pipe(Effect.zipRight(Effect.never))
  }))

/**
 * Tunes V8 for a process that is a relay worker: its heap grows at most ×2 between full collections instead of up
 * to ×4. A worker keeps each batch and the one read ahead alive across a send, so V8's default growth let a worker
 * draining a backlog peak anywhere from 230 to 350 MB of RSS; with this, 170–180 MB at the same rate (800k rows, 4
 * workers). Run it once at the start of such a process, as `deimos-outbox-relay` and `deimos relay` do; not in a
 * process that does other work (the setting is the whole process's). A `--heap-growing-percent` given to Node
 * (`NODE_OPTIONS`) is kept.
 *
 * @since 0.1.0
 */
export const tuneWorkerHeap: Effect.Effect<void> = Effect.sync(() => boundHeapGrowth())

/**
 * The relay as a layer: building it starts the relay in the layer's scope and finishes (run the program with
 * `Background.launch`); closing the scope stops it gracefully.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<
  Background.Running<DatabaseError | KafkaError.KafkaError>,
  never,
  Database.Database | KafkaDriver.KafkaDriver
> => Background.fork("OutboxRelay", run(options))

/**
 * The relay's options from configuration (environment variables by default), under `OUTBOX_`: `SCHEMA`, `PREFIX`,
 * `CONCURRENCY`, `BATCH_SIZE`, `LEASE_TIMEOUT`, `POLL_INTERVAL` (durations such as `30 seconds`),
 * `COMPACT_TOPICS` (comma-separated) and `WORKER_ID`; each optional.
 *
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  schema: Config.option(Config.string("SCHEMA")),
  prefix: Config.option(Config.string("PREFIX")),
  concurrency: Config.option(
    Config.integer("CONCURRENCY").pipe(Config.validate({
      message: "must be at least 1",
      validation: (n) => n >= 1
    }))
  ),
  batchSize: Config.option(
    Config.integer("BATCH_SIZE").pipe(Config.validate({
      message: "must be at least 1",
      validation: (n) => n >= 1
    }))
  ),
  leaseTimeout: Config.option(Config.duration("LEASE_TIMEOUT")),
  pollInterval: Config.option(Config.duration("POLL_INTERVAL")),
  compactTopics: Config.option(
    Config.map(Config.string("COMPACT_TOPICS"), (s) => s.split(",").map((t) => t.trim()).filter((t) => t !== ""))
  ),
  workerId: Config.option(Config.string("WORKER_ID"))
}).pipe(
  Config.map((o): Options => ({
    schema: Option.getOrUndefined(o.schema),
    prefix: Option.getOrUndefined(o.prefix),
    concurrency: Option.getOrUndefined(o.concurrency),
    batchSize: Option.getOrUndefined(o.batchSize),
    leaseTimeout: Option.getOrUndefined(o.leaseTimeout),
    pollInterval: Option.getOrUndefined(o.pollInterval),
    compactTopics: Option.getOrUndefined(o.compactTopics),
    workerId: Option.getOrUndefined(o.workerId)
  })),
  Config.nested("OUTBOX")
)

/**
 * {@link layer} with its options from configuration ({@link config} by default).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = config
): Layer.Layer<
  Background.Running<DatabaseError | KafkaError.KafkaError>,
  ConfigError.ConfigError,
  Database.Database | KafkaDriver.KafkaDriver
> => Layer.unwrapEffect(Effect.map(options, layer))
