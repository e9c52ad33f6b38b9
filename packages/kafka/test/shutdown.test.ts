import { DevCluster, KafkaBroker } from "@deimos/broker"
import { Consumer, DeimosConfig, MockBackend, Producer } from "@deimos/core"
import { Consumers, KafkaDriver, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { describe, expect, layer } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as net from "node:net"
import { Event, fast, publishInOnePartition, unique } from "./fixtures.js"

class Flaky extends Data.TaggedError("Flaky")<{}> {}

/** The kafkajs driver on the file's dev cluster, with the given grace period. */
const driver = (shutdownTimeout: Duration.DurationInput) =>
  Layer.unwrapEffect(
    Effect.map(
      DevCluster.DevCluster,
      (cluster) => KafkaJs.layer({ brokers: cluster.brokers, logLevel: "nothing", shutdownTimeout })
    )
  )

const Cluster = DevCluster.layer({ port: 0, registryPort: 0, partitions: 2 }).pipe(
  Layer.merge(MockBackend.layerMockValidating),
  Layer.merge(DeimosConfig.layer({}))
)

/** Two events in one partition: offsets 0 and 1. */
const publishTwo = (topic: string) => publishInOnePartition(topic, 2)

const committed = (groupId: string, topic: string) =>
  Effect.scoped(
    Effect.flatMap(KafkaDriver.KafkaDriver, (d) =>
      Effect.flatMap(d.admin, (admin) => admin.committedOffsets(groupId, topic)))
  ).pipe(Effect.map((offsets) =>
    offsets.reduce((n, c) => n + Math.max(0, Number(c.offset)), 0)
  ))

const timed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const result = yield* self
    return [result, (yield* Clock.currentTimeMillis) - start] as const
  })

/** A server on `port` that accepts connections and never answers; closed with the scope. */
const blackhole = (port: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: net.Server; readonly sockets: Array<net.Socket> }, Error>((resume) => {
      const sockets: Array<net.Socket> = []
      const server = net.createServer((socket) => {
        sockets.push(socket)
      })
      server.once("error", (error) => resume(Effect.fail(error)))
      server.listen(port, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
    }),
    ({ server, sockets }) =>
      Effect.sync(() => {
        for (const socket of sockets) socket.destroy()
        server.close()
      })
  )

describe("graceful shutdown", () => {
  layer(Cluster, { timeout: 60_000, excludeTestServices: true })((it) => {
    for (const delivery of ["message", "inlineBatch"] as const) {
      it.effect(
        `${delivery}: a handler slower than shutdownTimeout is interrupted after it; the rest was committed`,
        () =>
          Effect.gen(function*() {
            const topic = unique(`slow-stop-${delivery}`)
            const groupId = unique("g")
            yield* publishTwo(topic)
            const started = yield* Deferred.make<void>()
            const interrupted = yield* Ref.make(false)
            // the second message (or the batch) takes far longer than the grace period
            const slow = Deferred.succeed(started, undefined).pipe(
              Effect.zipRight(Effect.sleep("30 seconds")),
              Effect.onInterrupt(() => Ref.set(interrupted, true))
            )
            const consumer = delivery === "message"
              ? Consumer.make({
                topic,
                groupId,
                schema: Event,
                keyConfig: { field: "id" },
                ...fast,
                handle: (payload) => payload.n === 1 ? slow : Effect.void
              })
              : Consumer.make({
                topic,
                groupId,
                schema: Event,
                keyConfig: { field: "id" },
                delivery,
                ...fast,
                handleBatch: () => slow
              })
            const worker = yield* Effect.fork(Consumers.run([consumer]))
            yield* Deferred.await(started)
            const [exit, millis] = yield* timed(Fiber.interrupt(worker))
            expect(Exit.isInterrupted(exit)).toBe(true)
            expect(yield* Ref.get(interrupted)).toBe(true)
            // the grace period was given, and shutdown did not wait for the handler beyond it (it never ends)
            expect(millis).toBeGreaterThanOrEqual(900)
            expect(millis).toBeLessThan(20_000)
            // message delivery committed the first message; the interrupted one (or batch) is delivered again later
            expect(yield* committed(groupId, topic)).toBe(delivery === "message" ? 1 : 0)
          }).pipe(Effect.provide(driver("1 second"))),
        30_000
      )
    }

    for (const delivery of ["message", "batch"] as const) {
      it.effect(
        `${delivery}: a message waiting to be retried stops at once on shutdown, uncommitted; what was handled before it is committed`,
        () =>
          Effect.gen(function*() {
            const topic = unique("retry-stop")
            const groupId = unique("g")
            yield* publishTwo(topic)
            const attempts = yield* Ref.make(0)
            const failed = yield* Deferred.make<void>()
            const consumer = Consumer.make({
              topic,
              groupId,
              schema: Event,
              keyConfig: { field: "id" },
              ...fast,
              delivery,
              // a backoff longer than the grace period, which is longer than the test allows
              errorPolicy: { retryOn: ["Flaky"], backoff: { min: "10 seconds", max: "10 seconds" } },
              handle: (payload) =>
                payload.n === 0 ? Effect.void : Ref.update(attempts, (n) => n + 1).pipe(
                  Effect.zipRight(Deferred.succeed(failed, undefined)),
                  Effect.zipRight(new Flaky())
                )
            })
            const worker = yield* Effect.fork(Consumers.run([consumer]))
            yield* Deferred.await(failed)
            // let the policy log the error and start its backoff
            yield* Effect.sleep("200 millis")
            const [exit, millis] = yield* timed(Fiber.interrupt(worker))
            expect(Exit.isInterrupted(exit)).toBe(true)
            // not the grace period (30 s): the retry wait was given up at once
            expect(millis).toBeLessThan(15_000)
            expect(yield* Ref.get(attempts)).toBe(1)
            // the first message is committed, the one waiting to be retried is not
            expect(yield* committed(groupId, topic)).toBe(1)
          }).pipe(Effect.provide(driver("30 seconds"))),
        30_000
      )
    }
  })

  layer(Layer.mergeAll(MockBackend.layerMockValidating, DeimosConfig.layer({})), { excludeTestServices: true })(
    (it) => {
      it.scoped(
        "kafkaAsync: with the broker gone, flushTimeout bounds closing the scope; the loss is logged",
        () =>
          Effect.suspend(() => {
            const logs: Array<string> = []
            const logger = Logger.make(({ message }) => {
              logs.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
            })
            return Effect.gen(function*() {
              const topic = unique("flush-gone")
              const brokerScope = yield* Scope.make()
              const broker = yield* KafkaBroker.make({ port: 0 }).pipe(Scope.extend(brokerScope))
              const producerScope = yield* Scope.make()
              const backend = yield* Layer.build(
                KafkaProducerBackend.layerAsync({ maxLinger: "1 minute", flushTimeout: "1 second" })
                  .pipe(Layer.provide(KafkaJs.layer({
                    brokers: [broker.broker],
                    logLevel: "nothing",
                    shutdownTimeout: "1 second",
                    connectAttempts: 1
                  })))
              ).pipe(Scope.extend(producerScope))
              yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } })
                .publishList(Array.from({ length: 5 }, (_, n) => ({ id: `a${n}`, n })))
                .pipe(Effect.provide(backend))
              // the broker goes, and what takes its place accepts connections but never answers (a network
              // partition): a send waits for its request timeout (30 s)
              yield* Scope.close(brokerScope, Exit.void)
              yield* blackhole(broker.port)
              const [, millis] = yield* timed(Scope.close(producerScope, Exit.void))
              // the flush was tried for its timeout, then the producer's disconnect got its own bound, far below the
              // request timeout (30 s) a send to the blackhole waits for
              expect(millis).toBeGreaterThanOrEqual(900)
              expect(millis).toBeLessThan(20_000)
              expect(logs.some((l) => l.includes("were not all sent within the flush timeout (1s)"))).toBe(true)
            }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
          }),
        30_000
      )
    }
  )
})
