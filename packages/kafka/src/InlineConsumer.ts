/**
 * Reads messages of a topic (the last N per partition, or from an offset), decoded with the schema backend, into
 * memory or through a handler, then stops: for integration tests and debugging. It reads up to each partition's
 * high watermark as it was when reading began, and commits nothing. It needs no group of yours: the kafkajs driver
 * cannot be assigned partitions by hand, so it reads through a throwaway group of its own
 * (`deimos-inline-<uuid>`), which it deletes afterwards.
 *
 * @since 0.1.0
 */
import {
  ConsumerProcessor,
  type DeimosConfig,
  type KeyConfig,
  type SchemaBackend,
  type SchemaError,
  type SchemaRef
} from "@deimos/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as KafkaDriver from "./KafkaDriver.js"
import { KafkaError } from "./KafkaError.js"

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
  /** Start at this offset in every partition instead of `last`. */
  readonly fromOffset?: number | bigint | string | undefined
  /** Only these partitions. @default all */
  readonly partitions?: ReadonlyArray<number> | undefined
  /**
   * Longest the read may take (connecting excluded) before it fails with a retriable `KafkaError` of reason
   * `"Consume"`. @default 30 seconds
   */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * A decoded message.
 *
 * @since 0.1.0
 */
export interface Message<A, K> {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly key: K | null
  /** `null` for tombstones. */
  readonly payload: A | null
  readonly headers: Readonly<Record<string, string>>
  readonly timestamp: Date
}

const textDecoder = new TextDecoder()

const max = (a: bigint, b: bigint) => a > b ? a : b

/**
 * Runs `handler` on each decoded message, partitions in order and offsets in order within each, then stops. An
 * undecodable message fails with its `SchemaError`, a failing handler with its error (the rest is not handled).
 *
 * @since 0.1.0
 */
export const run = <
  S extends SchemaRef.Any,
  const KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>,
  E = never,
  R = never
>(
  options: Options<S, KC>,
  handler: (message: Message<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>) => Effect.Effect<void, E, R>
): Effect.Effect<
  void,
  KafkaError | SchemaError.SchemaError | E,
  KafkaDriver.KafkaDriver | SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig | R
> =>
  Effect.scoped(Effect.gen(function*() {
    type A = SchemaRef.Type<S>
    type K = KeyConfig.KeyOf<A, KC>
    const decode = yield* ConsumerProcessor.decoder(options)
    const topic = yield* ConsumerProcessor.topicOf(options)
    const driver = yield* KafkaDriver.KafkaDriver
    const admin = yield* driver.admin
    const offsets = [...(yield* admin.topicOffsets(topic))]
      .filter((o) => options.partitions === undefined || options.partitions.includes(o.partition))
      .sort((a, b) => a.partition - b.partition)
    const ranges = offsets.map((o) => {
      const high = BigInt(o.high)
      const low = BigInt(o.low)
      const from = options.fromOffset !== undefined
        ? max(low, BigInt(options.fromOffset))
        : options.last !== undefined
        ? max(low, high - BigInt(options.last))
        : low
      return { partition: o.partition, from: from.toString(), until: high.toString() }
    })
    const timeout = Duration.decode(options.timeout ?? "30 seconds")
    const raws = yield* admin.read(topic, ranges).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new KafkaError({
            reason: "Consume",
            retriable: true,
            message: `Reading ${topic} (${
              ranges.map((r) => `[${r.partition}] ${r.from}..${r.until}`).join(", ")
            }) did not finish within ${Duration.format(timeout)}`
          })
      })
    )
    for (const raw of raws) {
      const { key, payload } = yield* decode(raw)
      yield* handler({
        topic: raw.topic,
        partition: raw.partition,
        offset: raw.offset,
        key: key as K | null,
        payload: payload as A | null,
        headers: Object.fromEntries(
          Object.entries(raw.headers).flatMap(([k, v]) =>
            v === undefined ? [] : [[k, typeof v === "string" ? v : textDecoder.decode(v)]]
          )
        ),
        timestamp: new Date(Number(raw.timestamp))
      })
    }
  }))

/**
 * Reads into memory: partitions in order, offsets in order within each.
 *
 * @since 0.1.0
 */
export const read = <S extends SchemaRef.Any, const KC extends KeyConfig.KeyConfig<SchemaRef.Type<S>>>(
  options: Options<S, KC>
): Effect.Effect<
  ReadonlyArray<Message<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>>,
  KafkaError | SchemaError.SchemaError,
  KafkaDriver.KafkaDriver | SchemaBackend.SchemaBackend | DeimosConfig.DeimosConfig
> =>
  Effect.suspend(() => {
    const out: Array<Message<SchemaRef.Type<S>, KeyConfig.KeyOf<SchemaRef.Type<S>, KC>>> = []
    return Effect.as(
      run(options, (message) =>
        Effect.sync(() => {
          out.push(message)
        })),
      out
    )
  })
