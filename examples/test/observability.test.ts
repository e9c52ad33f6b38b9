// Metrics and spans with their Deimos names, exported through @effect/opentelemetry to in-memory exporters; the
// trace of a publisher continues in the consumer's span, through Kafka headers and through the outbox relay.
import { Database } from "@deimos/sql"
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { describe, expect, it } from "@effect/vitest"
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { sql } from "drizzle-orm"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { pipeline } from "../src/observability.js"

const schema = `observability_${process.pid}_${Math.floor(Math.random() * 1e6)}`
const spans = new InMemorySpanExporter()
const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 60_000 })

const Telemetry = NodeSdk.layer(() => ({
  resource: { serviceName: "observability-test" },
  spanProcessor: new SimpleSpanProcessor(spans),
  metricReader: reader
}))

const Db = Layer.scopedContext(Effect.gen(function*() {
  const context = yield* Layer.build(Database.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:5432/test") }))
  yield* Effect.addFinalizer(() =>
    Database.execute(sql.raw(`drop schema if exists "${schema}" cascade`)).pipe(Effect.provide(context), Effect.ignore)
  )
  return context
}))

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId

describe("observability", () => {
  it.live(
    "spans and metrics carry Deimos's names; traces continue through Kafka and through the outbox",
    () =>
      Effect.gen(function*() {
        yield* pipeline(schema).pipe(Effect.provide(Db))
        // lag is reported every 500 ms: let one report see both groups
        yield* Effect.sleep("1 second")
        yield* Effect.promise(() => reader.forceFlush())
        const finished = spans.getFinishedSpans()
        const named = (name: string) => finished.filter((s) => s.name === name)

        const checkout = named("checkout")[0]
        const direct = named("deimos-consumer").find((s) => s.spanContext().traceId === checkout.spanContext().traceId)
        expect(direct, "the consumer span of the direct publish").toBeDefined()
        expect(parentOf(direct!)).toBe(checkout.spanContext().spanId)

        const outbox = named("checkout-with-outbox")[0]
        const relayed = named("deimos-consumer").find((s) => s.spanContext().traceId === outbox.spanContext().traceId)
        expect(relayed, "the consumer span of the message relayed from the outbox").toBeDefined()
        expect(parentOf(relayed!)).toBe(outbox.spanContext().spanId)
        expect(named("deimos-outbox-relay").length).toBeGreaterThan(0)

        const names = new Set(
          metrics.getMetrics().flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics.map((x) => x.descriptor.name)))
        )
        for (const name of ["handler", "publish", "consumer_lag", "db_producer.insert", "db_producer.process"]) {
          expect(names, `metric ${name}`).toContain(name)
        }
      }).pipe(Effect.provide(Telemetry)),
    120_000
  )
})
