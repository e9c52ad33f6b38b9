/**
 * Observability: metrics and spans of Deimos exported over OTLP with `@effect/opentelemetry`.
 *
 * `pipeline` publishes one order straight to Kafka and one through the outbox (inside a database transaction),
 * relays the outbox, and consumes both topics. The trace a publisher starts continues in the consumer's
 * `deimos-consumer` span: the producer writes the W3C `traceparent` header, the outbox keeps it in the row's headers
 * and the relay sends it on. Metrics (`handler`, `publish`, `db_producer.insert`, `db_producer.process`,
 * `consumer_lag`, …) are Effect metrics, which the SDK's metric reader collects.
 *
 * Run with an OTLP collector (e.g. Jaeger or the OpenTelemetry Collector on :4318), embedded broker and PGlite:
 * `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 npx tsx examples/src/observability.ts`
 */
import { KafkaBroker } from "@deimos/broker"
import { Consumer, DeimosConfig, JsonBackend, Producer } from "@deimos/core"
import { Consumers, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { Database, Migrations, Outbox, OutboxRelay } from "@deimos/sql"
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { NodeRuntime } from "@effect/platform-node"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Order } from "./shared.js"

/** The OTLP exporters (the endpoint from `OTEL_EXPORTER_OTLP_ENDPOINT`, as the OpenTelemetry SDK reads it). */
export const Telemetry = NodeSdk.layer(() => ({
  resource: { serviceName: process.env.OTEL_SERVICE_NAME ?? "deimos-example" },
  spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter()),
  metricReader: new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), exportIntervalMillis: 5_000 })
}))

const direct = Producer.make({ topic: "orders", schema: Order, keyConfig: { field: "order_id" } })
const viaOutbox = Producer.make({ topic: "orders-outbox", schema: Order, keyConfig: { field: "order_id" } })

/**
 * Publishes, relays and consumes one order per path; returns when both were handled. Needs a `Database` (the outbox
 * tables are migrated into `schema`).
 */
export const pipeline = (schema: string) =>
  Effect.scoped(Effect.gen(function*() {
    const broker = yield* KafkaBroker.make({ port: 0, partitions: 2 })
    const Kafka = KafkaJs.layer({ brokers: [broker.broker], clientId: "observability", logLevel: "nothing" })
    yield* Migrations.run(Outbox.migrations({ schema }), { table: `${schema}.deimos_migrations` })

    const handled = yield* Deferred.make<void>()
    let seen = 0
    const consumerOf = (topic: string) =>
      Consumer.make({
        topic,
        groupId: `${topic}-audit`,
        schema: Order,
        keyConfig: { field: "order_id" },
        handle: (order) =>
          Effect.zipRight(
            Effect.logInfo(`${topic}: order ${order.order_id} handled`),
            Effect.suspend(() => ++seen === 2 ? Deferred.succeed(handled, undefined) : Effect.void)
          )
      })
    yield* Layer.build(
      Consumers.layer([consumerOf("orders"), consumerOf("orders-outbox")], { lagInterval: "500 millis" }).pipe(
        Layer.provide(Kafka)
      )
    )
    yield* Effect.forkScoped(
      OutboxRelay.run({ schema, pollInterval: "200 millis" }).pipe(Effect.provide(Kafka))
    )

    yield* direct.publish({ order_id: "o-1", customer: "ada", amount: 10 }).pipe(
      Effect.provide(KafkaProducerBackend.layer().pipe(Layer.provide(Kafka))),
      Effect.withSpan("checkout")
    )
    yield* Database.transaction(viaOutbox.publish({ order_id: "o-2", customer: "bob", amount: 20 })).pipe(
      Effect.provide(Outbox.layer({ schema })),
      Effect.withSpan("checkout-with-outbox")
    )
    yield* Deferred.await(handled)
  })).pipe(Effect.provide(Layer.merge(JsonBackend.layer, DeimosConfig.layer())))

if (import.meta.url === `file://${process.argv[1]}`) {
  pipeline("deimos_observability").pipe(
    Effect.provide(Database.layerPglite()),
    Effect.provide(Telemetry),
    Effect.tap(() => Effect.logInfo("Both orders handled; spans and metrics exported")),
    NodeRuntime.runMain
  )
}
