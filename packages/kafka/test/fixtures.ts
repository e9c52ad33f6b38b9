import { DevCluster } from "@deimos/broker"
import { DeimosConfig, MockBackend, Producer, SchemaRef } from "@deimos/core"
import { KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Tracer from "effect/Tracer"

export const Event = SchemaRef.fromSchema(
  Schema.Struct({ id: Schema.String, n: Schema.Number, timestamp: Schema.optional(Schema.Date) }),
  { name: "Event", namespace: "test" }
)

/** The dev cluster, the kafkajs driver on it, the validating mock schema backend, fast test backoff. */
export const KafkaTest = Layer.unwrapEffect(
  Effect.map(
    DevCluster.DevCluster,
    (cluster) =>
      KafkaJs.layer({
        brokers: cluster.brokers,
        clientId: "kafka-test",
        logLevel: "nothing",
        shutdownTimeout: "10 seconds"
      })
  )
).pipe(
  Layer.provideMerge(DevCluster.layer({ port: 0, partitions: 3 })),
  Layer.merge(MockBackend.layerMockValidating),
  Layer.merge(DeimosConfig.layer({ backoff: { min: "20 millis", max: "100 millis" } }))
)

let seq = 0
/** A unique name per test, so tests share one cluster without seeing each other. */
export const unique = (base: string) => `${base}-${process.pid}-${++seq}`

/** Consumer settings that make group changes fast in tests. */
export const fast = { maxWaitTime: "100 millis", heartbeatInterval: "200 millis", sessionTimeout: "6 seconds" } as const

/**
 * Publishes events `<idPrefix>0` … `<idPrefix>{count-1}` (`n` = 0 … count-1) into one partition of `topic`, in one
 * `publishList` through the kafka backend: the consumer sees them in order, usually in one batch.
 */
export const publishInOnePartition = (topic: string, count: number, idPrefix = "e") =>
  Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
    .publishList(
      Array.from({ length: count }, (_, n) => Producer.envelope({ id: `${idPrefix}${n}`, n }, { partitionKey: "p" }))
    )
    .pipe(Effect.provide(KafkaProducerBackend.layer()))

/** A tracer that is not Effect's built-in one (it makes the same spans): consumers then make their spans. */
export const InstalledTracer = Tracer.make({
  span: (...args) => Context.get(DefaultServices.liveServices, Tracer.Tracer).span(...args),
  context: (f) => f()
})
