/**
 * Nested partial matching of sent messages, with the mismatches of the closest candidate.
 */
import type { SentMessages } from "@deimos/core"

type SentMessage = SentMessages.SentMessage

export interface Mismatch {
  readonly path: string
  readonly expected: unknown
  readonly actual: unknown
}

interface AsymmetricMatcher {
  readonly asymmetricMatch: (other: unknown) => boolean
}

const isAsymmetric = (u: unknown): u is AsymmetricMatcher =>
  typeof u === "object" && u !== null && typeof (u as { asymmetricMatch?: unknown }).asymmetricMatch === "function"

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u) && !(u instanceof Date) && !(u instanceof Uint8Array)

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])

/** Every mismatch of `actual` against the partial `expected` (objects match by subset, recursively). */
export const mismatches = (expected: unknown, actual: unknown, path: string): ReadonlyArray<Mismatch> => {
  if (isAsymmetric(expected)) return expected.asymmetricMatch(actual) ? [] : [{ path, expected, actual }]
  if (expected instanceof Date) {
    const time = actual instanceof Date ? actual.getTime() : typeof actual === "string" ? Date.parse(actual) : actual
    return time === expected.getTime() ? [] : [{ path, expected, actual }]
  }
  if (expected instanceof Uint8Array) {
    return actual instanceof Uint8Array && sameBytes(expected, actual) ? [] : [{ path, expected, actual }]
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return [{ path, expected, actual }]
    return expected.flatMap((e, i) => mismatches(e, actual[i], `${path}[${i}]`))
  }
  if (isPlainObject(expected)) {
    if (!isPlainObject(actual)) return [{ path, expected, actual }]
    return Object.entries(expected).flatMap(([k, v]) => mismatches(v, actual[k], path === "" ? k : `${path}.${k}`))
  }
  return Object.is(expected, actual) || (typeof expected === "bigint" && expected === actual)
    ? []
    : [{ path, expected, actual }]
}

/** What a sent message is expected to hold. */
export interface Expected {
  readonly payload: unknown
  readonly key?: unknown
  readonly partitionKey?: unknown
  readonly headers?: Readonly<Record<string, unknown>> | undefined
}

export const mismatchesOf = (expected: Expected, message: SentMessage): ReadonlyArray<Mismatch> => [
  ...(expected.payload === undefined ? [] : mismatches(expected.payload, message.payload, "payload")),
  ...("key" in expected && expected.key !== undefined ? mismatches(expected.key, message.key, "key") : []),
  ...("partitionKey" in expected && expected.partitionKey !== undefined
    ? mismatches(expected.partitionKey, message.partitionKey, "partitionKey")
    : []),
  ...(expected.headers === undefined ? [] : mismatches(expected.headers, message.headers, "headers"))
]

export interface Outcome {
  readonly pass: boolean
  readonly closest: SentMessage | undefined
  readonly mismatches: ReadonlyArray<Mismatch>
}

export const find = (expected: Expected, candidates: ReadonlyArray<SentMessage>): Outcome => {
  let best: Outcome = { pass: false, closest: undefined, mismatches: [] }
  for (const message of candidates) {
    const found = mismatchesOf(expected, message)
    if (found.length === 0) return { pass: true, closest: message, mismatches: [] }
    if (best.closest === undefined || found.length < best.mismatches.length) {
      best = { pass: false, closest: message, mismatches: found }
    }
  }
  return best
}

const show = (u: unknown): string => {
  if (isAsymmetric(u)) return String(u)
  if (u instanceof Date) return `Date(${u.toISOString()})`
  if (u instanceof Uint8Array) return `Uint8Array(${Buffer.from(u).toString("hex")})`
  if (typeof u === "bigint") return `${u}n`
  if (u === undefined) return "undefined"
  return JSON.stringify(u, (_k, v) => typeof v === "bigint" ? `${v}n` : v)
}

export const describeFailure = (
  topic: string,
  expected: Expected,
  candidates: ReadonlyArray<SentMessage>,
  outcome: Outcome,
  allTopics: ReadonlyArray<string>
): string => {
  if (candidates.length === 0) {
    return `Expected a message on topic "${topic}" matching ${show(expected.payload)}, but none was sent to it` +
      (allTopics.length === 0 ? " (nothing was sent at all)" : ` (messages were sent to: ${allTopics.join(", ")})`)
  }
  const lines = outcome.mismatches.map((m) => `  ${m.path}: expected ${show(m.expected)}, received ${show(m.actual)}`)
  return [
    `Expected a message on topic "${topic}" matching ${
      show(expected.payload)
    }; none of the ${candidates.length} sent matches.`,
    `Closest message (key ${show(outcome.closest?.key)}) differs at:`,
    ...lines
  ].join("\n")
}
