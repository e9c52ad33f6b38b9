/**
 * W3C trace context in Kafka headers: producers write `traceparent` from the current span, consumers continue the
 * trace from it.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"

/**
 * The header name.
 *
 * @since 0.1.0
 */
export const header = "traceparent"

const pattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/**
 * Formats a span as a `traceparent` value.
 *
 * @since 0.1.0
 */
export const format = (span: { readonly traceId: string; readonly spanId: string; readonly sampled: boolean }) =>
  `00-${span.traceId.padStart(32, "0").slice(-32)}-${span.spanId.padStart(16, "0").slice(-16)}-${
    span.sampled ? "01" : "00"
  }`

/**
 * Parses a `traceparent` value into an external span, the parent of the consumer's span.
 *
 * @since 0.1.0
 */
export const parse = (value: string | undefined): Option.Option<Tracer.ExternalSpan> => {
  if (value === undefined) return Option.none()
  const match = pattern.exec(value.trim().toLowerCase())
  if (match === null || match[2] === "0".repeat(32) || match[3] === "0".repeat(16)) return Option.none()
  return Option.some(
    Tracer.externalSpan({ traceId: match[2], spanId: match[3], sampled: (parseInt(match[4], 16) & 1) === 1 })
  )
}

/**
 * The `traceparent` of the current span, when there is one (a span of this process; an external parent, as a
 * consumer's span continues, counts too).
 *
 * @since 0.1.0
 */
export const current: Effect.Effect<Option.Option<string>> = Effect.map(
  // the parent span as an optional service: `Effect.currentSpan` fails with an Error (a stack trace) when there is
  // none, which cost about 11 µs per publish
  Effect.serviceOption(Tracer.ParentSpan),
  Option.map(format)
)
