/**
 * Assertions on sent messages: `expectSent` inside `it.effect`, and the vitest matcher
 * `expect(topic).toHaveSent(payload, { key, partitionKey, headers })`. Payloads match partially and recursively
 * (vitest asymmetric matchers such as `expect.any(String)` work); a failure lists where the closest sent message
 * differs.
 *
 * @since 0.1.0
 */
import { DeimosConfig, SentMessages } from "@deimos/core"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { expect } from "vitest"
import * as Match from "./internal/match.js"
import { current } from "./internal/registry.js"

/**
 * @since 0.1.0
 */
export interface ExpectOptions {
  readonly key?: unknown
  readonly partitionKey?: unknown
  readonly headers?: Readonly<Record<string, unknown>> | undefined
}

/**
 * An assertion on sent messages failed.
 *
 * @since 0.1.0
 */
export class SentMessageAssertionError extends Data.TaggedError("SentMessageAssertionError")<{
  readonly message: string
  readonly topic: string
  readonly closest: SentMessages.SentMessage | undefined
}> {}

const onTopic = (all: ReadonlyArray<SentMessages.SentMessage>, topic: string, prefix: string) =>
  all.filter((m) => m.topic === topic || m.topic === prefix + topic)

/** The topic prefix in force, when settings are provided (assertions match topics with and without it). */
const topicPrefix = Effect.map(
  Effect.serviceOption(DeimosConfig.DeimosConfig),
  (settings) => settings._tag === "Some" ? settings.value.topicPrefix : ""
)

const expectedOf = (payload: unknown, options: ExpectOptions): Match.Expected => ({
  payload,
  key: options.key,
  partitionKey: options.partitionKey,
  headers: options.headers
})

/**
 * Succeeds when a message matching `payload` (partially) and the options was sent to `topic` (with or without the
 * topic prefix); fails with `SentMessageAssertionError` naming the differences of the closest message.
 *
 * @since 0.1.0
 */
export const expectSent = (
  topic: string,
  payload: unknown,
  options: ExpectOptions = {}
): Effect.Effect<SentMessages.SentMessage, SentMessageAssertionError, SentMessages.SentMessages> =>
  Effect.gen(function*() {
    const sent = yield* SentMessages.SentMessages
    const all = yield* sent.all
    const candidates = onTopic(all, topic, yield* topicPrefix)
    const expected = expectedOf(payload, options)
    const outcome = Match.find(expected, candidates)
    if (outcome.pass && outcome.closest !== undefined) return outcome.closest
    return yield* new SentMessageAssertionError({
      topic,
      closest: outcome.closest,
      message: Match.describeFailure(topic, expected, candidates, outcome, [...new Set(all.map((m) => m.topic))])
    })
  })

/**
 * Succeeds when nothing matching was sent to `topic` (with no payload: nothing at all).
 *
 * @since 0.1.0
 */
export const expectNotSent = (
  topic: string,
  payload?: unknown,
  options: ExpectOptions = {}
): Effect.Effect<void, SentMessageAssertionError, SentMessages.SentMessages> =>
  Effect.gen(function*() {
    const sent = yield* SentMessages.SentMessages
    const candidates = onTopic(yield* sent.all, topic, yield* topicPrefix)
    const outcome = Match.find(expectedOf(payload, options), candidates)
    if (candidates.length > 0 && outcome.pass) {
      return yield* new SentMessageAssertionError({
        topic,
        closest: outcome.closest,
        message: `Expected no message on topic "${topic}"${
          payload === undefined ? "" : " matching the payload"
        }, but ${candidates.length} were sent`
      })
    }
  })

/**
 * The messages sent to `topic` (with or without the prefix), in order.
 *
 * @since 0.1.0
 */
export const sentTo = (
  topic: string
): Effect.Effect<ReadonlyArray<SentMessages.SentMessage>, never, SentMessages.SentMessages> =>
  Effect.gen(function*() {
    const sent = yield* SentMessages.SentMessages
    return onTopic(yield* sent.all, topic, yield* topicPrefix)
  })

/**
 * Forgets every sent message.
 *
 * @since 0.1.0
 */
export const clearSent: Effect.Effect<void, never, SentMessages.SentMessages> = Effect.flatMap(
  SentMessages.SentMessages,
  (sent) => sent.clear
)

interface SentMatchers<R = unknown> {
  toHaveSent: (payload: unknown, options?: ExpectOptions) => R
}

declare module "vitest" {
  interface Matchers<T = any> extends SentMatchers<T> {}
}

/**
 * Installs `expect(topic).toHaveSent(payload, options)`. Call once, e.g. in a vitest setup file or at the top of a
 * test file. The matcher reads the sent messages of the test layer built for the running test (or for the file,
 * with `it.layer`). `expect(messages).toHaveSent(...)` with an array of sent messages also works.
 *
 * @since 0.1.0
 */
export const installMatchers = (): void => {
  expect.extend({
    toHaveSent(received: unknown, payload: unknown, options: ExpectOptions = {}) {
      const entry = current()
      const all: ReadonlyArray<SentMessages.SentMessage> = Array.isArray(received)
        ? received
        : entry === undefined
        ? []
        : Effect.runSync(entry.store.all)
      const topic = typeof received === "string" ? received : "(given messages)"
      const candidates = typeof received === "string" ? onTopic(all, received, entry?.topicPrefix ?? "") : all
      const expected = expectedOf(payload, options)
      const outcome = Match.find(expected, candidates)
      const noStore = typeof received === "string" && entry === undefined
      return {
        pass: outcome.pass,
        message: () =>
          noStore
            ? `No test layer was built for this test: provide TestLayer.layer to it.effect or it.layer`
            : outcome.pass
            ? `Expected no message on topic "${topic}" matching the payload, but one was sent`
            : Match.describeFailure(topic, expected, candidates, outcome, [...new Set(all.map((m) => m.topic))]),
        actual: outcome.closest === undefined ? undefined : {
          payload: outcome.closest.payload,
          key: outcome.closest.key,
          partitionKey: outcome.closest.partitionKey,
          headers: outcome.closest.headers
        },
        expected
      }
    }
  })
}
