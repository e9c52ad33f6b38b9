/**
 * The Kafka driver port: what the runtime needs from a Kafka client, in the toolkit's own types (`Uint8Array`
 * payloads, string offsets, its own errors). kafkajs is the first adapter (`KafkaJs`); another adapter needs no
 * change outside its own module.
 *
 * @since 0.1.0
 */
import type { ConsumerProcessor } from "@deimos/core"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { KafkaError } from "./KafkaError.js"

/**
 * A message to send.
 *
 * @since 0.1.0
 */
export interface OutgoingMessage {
  readonly key: Uint8Array | null
  readonly value: Uint8Array | null
  /** Chooses the partition (murmur2, as the Java client does with keys); `null`: the key, else round robin. */
  readonly partitionKey: string | null
  readonly headers: Readonly<Record<string, string | Uint8Array>>
}

/**
 * @since 0.1.0
 */
export interface ProducerOptions {
  /** @default false */
  readonly idempotent?: boolean | undefined
  /** -1 (all), 0 or 1. @default -1 */
  readonly acks?: -1 | 0 | 1 | undefined
  /** @default 30 seconds */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 */
export interface Producer {
  readonly send: (topic: string, messages: ReadonlyArray<OutgoingMessage>) => Effect.Effect<void, KafkaError>
}

/**
 * A fetched batch of one partition.
 *
 * @since 0.1.0
 */
export interface Batch {
  readonly topic: string
  readonly partition: number
  readonly highWatermark: string
  readonly messages: ReadonlyArray<ConsumerProcessor.RawMessage>
}

/**
 * What a batch handler can do while it runs.
 *
 * @since 0.1.0
 */
export interface BatchControl {
  /** Marks `offset` (of this batch's partition) as processed; committed at the next commit. */
  readonly resolveOffset: (offset: string) => Effect.Effect<void>
  /** Commits the offsets resolved so far in this batch now (the next offset to read, as Kafka stores it). */
  readonly commit: Effect.Effect<void, KafkaError>
  /** Tells the group coordinator this member is alive (long handlers). */
  readonly heartbeat: Effect.Effect<void, KafkaError>
  /** False once the consumer is stopping: stop taking new messages. A plain function: it is asked per message. */
  readonly isRunning: () => boolean
  /** Stops fetching from this batch's partition (fatal errors). */
  readonly pause: Effect.Effect<void>
  /** Completes when the member begins to stop (never, while it runs): a handler waiting to retry gives up. */
  readonly stopping: Effect.Effect<void>
}

/**
 * @since 0.1.0
 */
export interface ConsumerOptions {
  readonly groupId: string
  readonly topics: ReadonlyArray<string>
  /** Where a group without committed offsets starts. @default true */
  readonly fromBeginning?: boolean | undefined
  readonly sessionTimeout?: Duration.DurationInput | undefined
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  readonly maxBytesPerPartition?: number | undefined
  readonly minBytes?: number | undefined
  /** How long the broker may hold a fetch for data (a stop waits for the fetch in flight). @default 500 millis */
  readonly maxWaitTime?: Duration.DurationInput | undefined
}

/**
 * A group member. `run` hands each fetched batch to `handle`, run in a child fiber of `run`, and fetches nothing
 * more until it is done (back-pressure). `run` fails when `handle` fails (the partition is paused and the batch is
 * not committed) or when the driver gives up. Interrupting `run` is the graceful stop: no batch is taken any more,
 * `isRunning` turns false, and the batch in hand gets up to the driver's shutdown timeout to finish (it is
 * interrupted after that); then the member leaves the group when its scope closes.
 *
 * @since 0.1.0
 */
export interface GroupConsumer {
  readonly run: <E, R>(
    handle: (batch: Batch, control: BatchControl) => Effect.Effect<void, E, R>
  ) => Effect.Effect<never, E | KafkaError, R>
}

/**
 * Offsets of one partition.
 *
 * @since 0.1.0
 */
export interface PartitionOffsets {
  readonly partition: number
  /** First offset still in the log. */
  readonly low: string
  /** Next offset to be written (high watermark). */
  readonly high: string
}

/**
 * Offsets `from` (inclusive) to `until` (exclusive) of one partition.
 *
 * @since 0.1.0
 */
export interface OffsetRange {
  readonly partition: number
  readonly from: string
  readonly until: string
}

/**
 * @since 0.1.0
 */
export interface Admin {
  readonly createTopic: (
    topic: string,
    options?: { readonly partitions?: number | undefined }
  ) => Effect.Effect<boolean, KafkaError>
  readonly deleteTopic: (topic: string) => Effect.Effect<void, KafkaError>
  readonly topicOffsets: (topic: string) => Effect.Effect<ReadonlyArray<PartitionOffsets>, KafkaError>
  /** Committed offsets of a group for a topic (`-1`: none). */
  readonly committedOffsets: (
    groupId: string,
    topic: string
  ) => Effect.Effect<ReadonlyArray<{ readonly partition: number; readonly offset: string }>, KafkaError>
  /**
   * Sets a group's committed offsets for partitions of a topic (the next offset each will read). The group must
   * have no running member (else a `KafkaError` of reason `"Admin"` saying so): its members would commit over them.
   */
  readonly setOffsets: (
    groupId: string,
    topic: string,
    offsets: ReadonlyArray<{ readonly partition: number; readonly offset: string }>
  ) => Effect.Effect<void, KafkaError>
  /**
   * Reads the messages of each range (`from` inclusive, `until` exclusive; cut at the partition's high watermark)
   * without committing, in offset order per partition. An adapter may read through a throwaway group of its own
   * (the kafkajs adapter does, and deletes it).
   */
  readonly read: (
    topic: string,
    ranges: ReadonlyArray<OffsetRange>
  ) => Effect.Effect<ReadonlyArray<ConsumerProcessor.RawMessage>, KafkaError>
}

/**
 * @since 0.1.0
 */
export declare namespace KafkaDriver {
  /**
   * @since 0.1.0
   */
  export interface Service {
    readonly name: string
    readonly producer: (options?: ProducerOptions) => Effect.Effect<Producer, KafkaError, Scope.Scope>
    readonly consumer: (options: ConsumerOptions) => Effect.Effect<GroupConsumer, KafkaError, Scope.Scope>
    readonly admin: Effect.Effect<Admin, KafkaError, Scope.Scope>
  }
}

/**
 * @since 0.1.0
 * @category tags
 */
export class KafkaDriver extends Context.Tag("@deimos/kafka/KafkaDriver")<KafkaDriver, KafkaDriver.Service>() {}
