/**
 * kafkajs errors in the toolkit's `KafkaError`. kafkajs marks each error `retriable`, but when it gives up retrying
 * it wraps the last error in a non-retriable one (`KafkaJSNumberOfRetriesExceeded`, or `KafkaJSNonRetriableError`
 * around a `KafkaJSConnectionError` when the broker is down): the error at the root of the `cause` chain says
 * whether trying again later may help.
 */
import { KafkaError, type Reason } from "../KafkaError.js"

interface Chained {
  readonly name?: unknown
  readonly message?: unknown
  readonly retriable?: unknown
  readonly type?: unknown
  readonly cause?: unknown
}

/** The errors of a cause chain, outermost first (bounded, in case of a cycle). */
const chainOf = (error: unknown): ReadonlyArray<Chained> => {
  const chain: Array<Chained> = []
  let current = error as Chained | undefined
  while (current !== undefined && current !== null && typeof current === "object" && chain.length < 8) {
    chain.push(current)
    current = current.cause as Chained | undefined
  }
  return chain
}

/** Trying again may help: the root cause's flag decides, else the outermost error's. */
export const isRetriable = (error: unknown): boolean => {
  const chain = chainOf(error)
  for (let i = chain.length - 1; i >= 0; i--) {
    if (typeof chain[i].retriable === "boolean") return chain[i].retriable === true
  }
  return false
}

/** The broker's error name (`MESSAGE_TOO_LARGE`, …) anywhere in the chain. */
const codeOf = (error: unknown): string | undefined => {
  for (const e of chainOf(error)) if (typeof e.type === "string") return e.type
  return undefined
}

/** The messages of the chain, joined: "what kafkajs said: why". */
const detailOf = (error: unknown): string => {
  const messages: Array<string> = []
  for (const e of chainOf(error)) {
    const message = typeof e.message === "string" ? e.message : undefined
    if (message !== undefined && message !== "" && !messages.includes(message)) messages.push(message)
  }
  return messages.length === 0 ? String(error) : messages.join(": ")
}

/** A kafkajs error as a `KafkaError`: `context` says what was being done. */
export const fromKafkaJs = (reason: Reason, context: string) => (error: unknown): KafkaError =>
  new KafkaError({
    reason,
    retriable: isRetriable(error),
    code: codeOf(error),
    message: `${context}: ${detailOf(error)}`,
    cause: error
  })
