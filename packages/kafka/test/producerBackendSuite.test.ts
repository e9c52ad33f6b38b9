// The ProducerBackend conformance suite, run by the `kafka` and `kafkaAsync` backends against the dev broker.
import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { ProducerBackend } from "@deimos/core"
import { KafkaDriver, type KafkaError, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { ProducerBackendSuite } from "@deimos/test"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"

/** The dev broker and the kafkajs driver on it, for the backend under test and for reading back. */
const Cluster = Layer.unwrapScoped(
  Effect.map(
    KafkaBroker.make({ port: 0, partitions: 3 }),
    (broker) => KafkaJs.layer({ brokers: [broker.broker], clientId: "suite", logLevel: "nothing" })
  )
)

const topic = (name: string) =>
  Effect.gen(function*() {
    const driver = yield* KafkaDriver.KafkaDriver
    const admin = yield* driver.admin
    const full = `${name}-${globalThis.crypto.randomUUID().slice(0, 8)}`
    yield* admin.createTopic(full, { partitions: 3 })
    return full
  }).pipe(Effect.scoped)

/** Every message of the topic, once `count` are there (within 20 s). */
const read = (name: string, count: number) =>
  Effect.gen(function*() {
    const driver = yield* KafkaDriver.KafkaDriver
    const admin = yield* driver.admin
    const offsets = yield* admin.topicOffsets(name).pipe(
      Effect.filterOrFail(
        (all) => all.reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0) >= count,
        () => new Error(`fewer than ${count} messages on ${name} yet`)
      ),
      Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo(Duration.seconds(20))))
    )
    return yield* admin.read(name, offsets.map((o) => ({ partition: o.partition, from: o.low, until: o.high })))
  }).pipe(Effect.scoped)

/** A backend connected to a broker that then went away. */
const unreachable = (
  backend: (
    options: KafkaProducerBackend.Options
  ) => Effect.Effect<
    ProducerBackend.ProducerBackend.Service,
    KafkaError.KafkaError,
    KafkaDriver.KafkaDriver | Scope.Scope
  >
) =>
  Layer.scoped(
    ProducerBackend.ProducerBackend,
    Effect.gen(function*() {
      const brokerScope = yield* Scope.make()
      const broker = yield* KafkaBroker.make({ port: 0 }).pipe(Scope.extend(brokerScope))
      const made = yield* backend({ timeout: "2 seconds" }).pipe(
        Effect.provide(
          KafkaJs.layer({
            brokers: [broker.broker],
            logLevel: "nothing",
            connectAttempts: 1,
            connectionTimeout: "300 millis",
            requestTimeout: "1 second",
            shutdownTimeout: "1 second"
          })
        )
      )
      yield* Scope.close(brokerScope, Exit.void)
      return made
    })
  )

ProducerBackendSuite.suite("kafka", {
  layer: Layer.provideMerge(KafkaProducerBackend.layer(), Cluster),
  topic,
  read,
  unreachable: unreachable(KafkaProducerBackend.make)
})

ProducerBackendSuite.suite("kafkaAsync", {
  layer: Layer.provideMerge(KafkaProducerBackend.layerAsync({ maxLinger: "20 millis" }), Cluster),
  topic,
  read,
  unreachable: unreachable(KafkaProducerBackend.makeAsync)
})
