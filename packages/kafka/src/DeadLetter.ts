/**
 * Replaying dead letters: the messages a consumer's error policy sent to a dead-letter topic go back to the topic
 * they came from (their `deimos-dlq-source-topic` header), key, value and own headers as they were, once the cause
 * is fixed. A replay reads the dead-letter topic as a consumer group (`deimos-dlq-replay` by default) up to where it
 * ended when the replay began, and commits as it goes: a replay stopped part-way resumes where it stopped, and a
 * second replay sends nothing twice.
 *
 * @since 0.1.0
 */
import { DeadLetter } from "@deimos/core"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as KafkaDriver from "./KafkaDriver.js"
import { KafkaError } from "./KafkaError.js"

/**
 * @since 0.1.0
 */
export interface ReplayOptions {
  /** The dead-letter topic, as named on the broker (the topic prefix included), e.g. `prod.orders.dlq`. */
  readonly topic: string
  /** The group whose committed offsets remember how far replays got. @default "deimos-dlq-replay" */
  readonly groupId?: string | undefined
  /** Replays only the dead letters this accepts (the others are passed over, and committed). @default all */
  readonly filter?: ((letter: Letter) => boolean) | undefined
  /** Longest the replay may take once connected. @default 5 minutes */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * A dead letter as `filter` sees it.
 *
 * @since 0.1.0
 */
export interface Letter {
  readonly offset: string
  readonly partition: number
  /** Where it came from; `undefined` for a message that is not a dead letter. */
  readonly sourceTopic: string | undefined
  readonly errorTag: string | undefined
  readonly headers: Readonly<Record<string, string | Uint8Array | undefined>>
}

/**
 * What a replay did.
 *
 * @since 0.1.0
 */
export interface ReplayResult {
  /** Sent back to their source topic. */
  readonly replayed: number
  /** Passed over: refused by `filter`, or naming no source topic. */
  readonly skipped: number
}

const text = (value: string | Uint8Array | undefined) =>
  value === undefined ? undefined : typeof value === "string" ? value : Buffer.from(value).toString("utf8")

/**
 * Sends the dead letters of `options.topic` back to their source topics, up to the end of the dead-letter topic
 * as it was when the replay began.
 *
 * @since 0.1.0
 */
export const replay = (options: ReplayOptions): Effect.Effect<ReplayResult, KafkaError, KafkaDriver.KafkaDriver> =>
  Effect.scoped(Effect.gen(function*() {
    const driver = yield* KafkaDriver.KafkaDriver
    const admin = yield* driver.admin
    const groupId = options.groupId ?? "deimos-dlq-replay"
    const ends = yield* admin.topicOffsets(options.topic)
    const committed = new Map(
      (yield* admin.committedOffsets(groupId, options.topic)).map((c) => [c.partition, BigInt(c.offset)])
    )
    // what is left per partition: from the group's offset (or the log start) to the end as it is now
    const left = new Map<number, bigint>()
    for (const o of ends) {
      const from = committed.get(o.partition) ?? -1n
      const start = from >= 0n ? from : BigInt(o.low)
      if (BigInt(o.high) > start) left.set(o.partition, BigInt(o.high))
    }
    if (left.size === 0) return { replayed: 0, skipped: 0 }

    const producer = yield* driver.producer({ acks: -1 })
    const consumer = yield* driver.consumer({ groupId, topics: [options.topic], fromBeginning: true })
    const done = yield* Deferred.make<void>()
    let replayed = 0
    let skipped = 0
    const run = consumer.run((batch, control) =>
      Effect.gen(function*() {
        const end = left.get(batch.partition)
        if (end === undefined) return yield* control.pause
        // the batch's dead letters up to the end, grouped by source topic in order
        const bySource = new Map<string, Array<KafkaDriver.OutgoingMessage>>()
        let last: string | undefined
        for (const raw of batch.messages) {
          if (BigInt(raw.offset) >= end) break
          last = raw.offset
          const sourceTopic = text(raw.headers[DeadLetter.headers.sourceTopic])
          const letter: Letter = {
            offset: raw.offset,
            partition: raw.partition,
            sourceTopic,
            errorTag: text(raw.headers[DeadLetter.headers.errorTag]),
            headers: raw.headers
          }
          const back = DeadLetter.replayOf(raw)
          if (back === undefined || (options.filter !== undefined && !options.filter(letter))) {
            skipped++
            continue
          }
          const list = bySource.get(back.topic)
          if (list === undefined) bySource.set(back.topic, [back.message])
          else list.push(back.message)
        }
        for (const [topic, messages] of bySource) {
          yield* producer.send(topic, messages)
          replayed += messages.length
        }
        if (last !== undefined) {
          yield* control.resolveOffset(last)
          yield* control.commit
        }
        if (last === undefined || BigInt(last) + 1n >= end) {
          left.delete(batch.partition)
          yield* control.pause
          if (left.size === 0) yield* Deferred.succeed(done, undefined)
        }
      })
    )
    const timeout = Duration.decode(options.timeout ?? "5 minutes")
    yield* Effect.raceFirst(run, Deferred.await(done)).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new KafkaError({
            reason: "Consume",
            retriable: true,
            message: `Replaying ${options.topic} did not finish within ${
              Duration.format(timeout)
            } (${replayed} replayed so far; a new replay resumes from there)`
          })
      })
    )
    return { replayed, skipped }
  }))
