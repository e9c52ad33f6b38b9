/**
 * Dead letters: a message the error policy gives up on (`deadLetterOn`, or `decide` answering `"deadLetter"`) is
 * published as it was received — the raw key, value and headers — to a dead-letter topic (`<topic>.dlq` by
 * default), with headers naming the error and where the message came from; then its offset is committed, so the
 * partition moves on without losing the message. `@deimos/kafka`'s `DeadLetter.replay` sends dead letters back to
 * their source topic.
 *
 * @since 0.1.0
 */
import type * as ProducerBackend from "./ProducerBackend.js"

/**
 * The headers a dead letter carries on top of the message's own.
 *
 * @since 0.1.0
 */
export const headers = {
  /** The `_tag` of the error (`Defect` for a defect, `SchemaError` for bytes that could not be decoded). */
  errorTag: "deimos-dlq-error-tag",
  /** The error's message (its first line, at most 1000 characters). */
  errorMessage: "deimos-dlq-error-message",
  /** The consumer that gave up on the message. */
  consumer: "deimos-dlq-consumer",
  /** Where the message was read: topic (prefix included), partition and offset. */
  sourceTopic: "deimos-dlq-source-topic",
  sourcePartition: "deimos-dlq-source-partition",
  sourceOffset: "deimos-dlq-source-offset",
  /** How many times the message was handled before it was given up (1 without retries). */
  attempts: "deimos-dlq-attempts"
} as const

/**
 * The default dead-letter topic of a topic: `<topic>.dlq`.
 *
 * @since 0.1.0
 */
export const defaultTopic = (topic: string): string => `${topic}.dlq`

/**
 * A message as received, to be sent on as a dead letter.
 *
 * @since 0.1.0
 */
export interface Received {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly key: Uint8Array | null
  readonly value: Uint8Array | null
  readonly headers: Readonly<Record<string, string | Uint8Array | undefined>>
}

/**
 * Why a message became a dead letter.
 *
 * @since 0.1.0
 */
export interface Reason {
  readonly consumer: string
  readonly errorTag: string
  readonly errorMessage: string
  readonly attempts: number
}

const dlqHeaders: ReadonlySet<string> = new Set(Object.values(headers))

/**
 * The dead letter of a received message: its key, value and own headers as they were, the dead-letter headers
 * added (replacing those of an earlier trip through a dead-letter topic). Partitioned by its key.
 *
 * @since 0.1.0
 */
export const messageOf = (received: Received, reason: Reason): ProducerBackend.ProducerMessage => {
  const out: Record<string, string | Uint8Array> = {}
  for (const name in received.headers) {
    const value = received.headers[name]
    if (value !== undefined && !dlqHeaders.has(name)) out[name] = value
  }
  out[headers.errorTag] = reason.errorTag
  out[headers.errorMessage] = reason.errorMessage.split("\n")[0].slice(0, 1000)
  out[headers.consumer] = reason.consumer
  out[headers.sourceTopic] = received.topic
  out[headers.sourcePartition] = String(received.partition)
  out[headers.sourceOffset] = received.offset
  out[headers.attempts] = String(reason.attempts)
  return {
    key: received.key,
    value: received.value,
    partitionKey: null,
    headers: out,
    rawKey: received.key,
    payload: null,
    producer: reason.consumer
  }
}

/**
 * The message to send back to its source topic: the dead letter's key and value, its headers without the
 * dead-letter ones; `undefined` when it names no source topic (not a dead letter).
 *
 * @since 0.1.0
 */
export const replayOf = (
  received: Received
): { readonly topic: string; readonly message: ProducerBackend.ProducerMessage } | undefined => {
  const source = received.headers[headers.sourceTopic]
  if (source === undefined) return undefined
  const out: Record<string, string | Uint8Array> = {}
  for (const name in received.headers) {
    const value = received.headers[name]
    if (value !== undefined && !dlqHeaders.has(name)) out[name] = value
  }
  return {
    topic: typeof source === "string" ? source : Buffer.from(source).toString("utf8"),
    message: {
      key: received.key,
      value: received.value,
      partitionKey: null,
      headers: out,
      rawKey: received.key,
      payload: null,
      producer: "deimos-dlq-replay"
    }
  }
}
