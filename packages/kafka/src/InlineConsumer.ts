/**
 * Reads messages of a topic into memory (the last N per partition, or from an offset), decoded with the schema
 * backend, then stops: for integration tests and debugging.
 *
 * @since 0.1.0
 */
import { Consumer, type KeyConfig, type SchemaBackend, type SchemaError, type SchemaRef } from "@deimos/core"
import * as Effect from "effect/Effect"
import * as KafkaDriver from "./KafkaDriver.js"
import type { KafkaError } from "./KafkaError.js"

/**
 * @since 0.1.0
 */
export interface Options<S extends SchemaRef.Any, KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>> {
  /** The topic, without the global prefix. */
  readonly topic: string
  readonly schema: S
  readonly keyConfig: KC
  /** The last N messages of each partition. @default all */
  readonly last?: number | undefined
  /** Start at this offset in every partition instead. */
  readonly fromOffset?: number | undefined
}

/**
 * A decoded message.
 *
 * @since 0.1.0
 */
export interface Message<A, K> {
  readonly partition: number
  readonly offset: string
  readonly key: K | null
  /** `null` for tombstones. */
  readonly payload: A | null
  readonly headers: Readonly<Record<string, string>>
  readonly timestamp: Date
}

const textDecoder = new TextDecoder()

/**
 * Reads and decodes; partitions in order, offsets in order within each.
 *
 * @since 0.1.0
 */
export const read = <S extends SchemaRef.Any, const KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>>(
  options: Options<S, KC>
): Effect.Effect<
  ReadonlyArray<Message<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>>,
  KafkaError | SchemaError.SchemaError,
  KafkaDriver.KafkaDriver | SchemaBackend.SchemaBackend
> =>
  Effect.scoped(Effect.gen(function*() {
    const decoder = Consumer.make({
      topic: options.topic,
      groupId: "inline",
      schema: options.schema,
      keyConfig: options.keyConfig,
      handle: () => Effect.void
    })
    const topic = yield* Consumer.fullTopic(decoder)
    const driver = yield* KafkaDriver.KafkaDriver
    const admin = yield* driver.admin
    const offsets = yield* admin.topicOffsets(topic)
    const out: Array<Message<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>> = []
    for (const o of [...offsets].sort((a, b) => a.partition - b.partition)) {
      const high = Number(o.high)
      const low = Number(o.low)
      const from = options.fromOffset !== undefined
        ? Math.max(low, options.fromOffset)
        : options.last !== undefined
        ? Math.max(low, high - options.last)
        : low
      const raws = yield* admin.read(topic, o.partition, String(from), String(high))
      for (const raw of raws) {
        out.push({
          partition: raw.partition,
          offset: raw.offset,
          key: (yield* Consumer.decodeKey(decoder, raw)) as KeyConfig.KeyOf<SchemaRef.Type<S>, KC> | null,
          payload: (yield* Consumer.decodePayload(decoder, raw)) as SchemaRef.Type<S> | null,
          headers: Object.fromEntries(
            Object.entries(raw.headers).flatMap(([k, v]) =>
              v === undefined ? [] : [[k, typeof v === "string" ? v : textDecoder.decode(v)]]
            )
          ),
          timestamp: new Date(Number(raw.timestamp))
        })
      }
    }
    return out
  }))
