import { DevCluster } from "@deimos/broker"
import { DeimosConfig, JsonBackend, Producer, SchemaRef } from "@deimos/core"
import { KafkaDriver, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { Kafka, logLevel } from "kafkajs"
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const testDir = path.dirname(fileURLToPath(import.meta.url))
const examplesDir = path.join(testDir, "..", "..", "..", "examples")

/** The example's schema (examples/src/shared.ts), written by the test as the example's producer would. */
const Order = SchemaRef.fromSchema(
  Schema.Struct({
    order_id: Schema.String,
    customer: Schema.String,
    amount: Schema.Number,
    message_id: Schema.optional(Schema.String),
    timestamp: Schema.optional(Schema.Date)
  }),
  { name: "Order", namespace: "com.example.shop" }
)

/**
 * `examples/src/kafka-consumer.ts` in a child process, configured through the environment only, with `@deimos/*`
 * taken from the TypeScript sources (as vitest does) so that a stale build cannot be what is tested.
 */
const startWorker = (brokers: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/kafka-consumer.ts"], {
        cwd: examplesDir,
        env: {
          ...process.env,
          TSX_TSCONFIG_PATH: path.join(testDir, "tsconfig.sources.json"),
          KAFKA_BROKERS: brokers,
          KAFKA_CLIENT_ID: "example-worker",
          // kafkajs's joins and leaves in the output, for a failure to show
          KAFKA_LOG_LEVEL: "info"
        }
      })
      let output = ""
      child.stdout.on("data", (d: Buffer) => output += d.toString())
      child.stderr.on("data", (d: Buffer) => output += d.toString())
      return { child, output: () => output }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
  )

const exitCode = (child: ChildProcess) =>
  Effect.async<number | null>((resume) => {
    if (child.exitCode !== null) return resume(Effect.succeed(child.exitCode))
    child.once("exit", (code) => resume(Effect.succeed(code)))
  })

/** Polls until `check` is true; the test's own timeout bounds it. */
const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced("100 millis") })

const describeGroup = (brokers: ReadonlyArray<string>, groupId: string) =>
  Effect.promise(async () => {
    const admin = new Kafka({ brokers: [...brokers], logLevel: logLevel.NOTHING }).admin()
    await admin.connect()
    try {
      return (await admin.describeGroups([groupId])).groups[0]
    } finally {
      await admin.disconnect()
    }
  })

describe("examples/src/kafka-consumer.ts", () => {
  it.live(
    "runs as a worker and stops cleanly on SIGTERM: exit 0, group left, handled offsets committed",
    () =>
      Effect.gen(function*() {
        const cluster = yield* DevCluster.DevCluster
        const orders = Producer.make({ topic: "orders", schema: Order, keyConfig: { field: "order_id" } })
        const committed = Effect.scoped(
          Effect.flatMap(
            KafkaDriver.KafkaDriver,
            (driver) => Effect.flatMap(driver.admin, (admin) => admin.committedOffsets("billing", "orders"))
          )
        ).pipe(Effect.map((offsets) => offsets.reduce((n, c) => n + Math.max(0, Number(c.offset)), 0)))

        yield* orders.publishList(
          Array.from({ length: 10 }, (_, i) => ({ order_id: `o-${i}`, customer: "c", amount: i }))
        )
        const worker = yield* startWorker(cluster.brokers.join(","))
        yield* waitUntil(Effect.map(committed, (n) => n === 10))
        expect(worker.output()).toContain("order o-9: c pays 9")

        // a declined payment is retried with a backoff of 1 s and more: shutdown must not wait for it
        yield* orders.publish({ order_id: "declined", customer: "c", amount: -1 })
        yield* waitUntil(Effect.sync(() => worker.output().includes("Handler error; retrying in")))

        const start = yield* Clock.currentTimeMillis
        worker.child.kill("SIGTERM")
        expect(yield* exitCode(worker.child)).toBe(0)
        // kafkajs lets the fetch in flight finish before it leaves (maxWaitTime), then the disconnect: well below the
        // 30 s grace a message stuck in its retry backoff would hold the stop for without ErrorPolicy.Stopping
        expect((yield* Clock.currentTimeMillis) - start).toBeLessThan(20_000)
        expect(worker.output()).toContain("Consumer stopping: leaving the group")

        const group = yield* describeGroup(cluster.brokers, "billing")
        const seen = `group ${JSON.stringify({ ...group, members: group.members.map((m) => m.memberId) })}\n` +
          worker.output()
        expect(group.state, seen).toBe("Empty")
        expect(group.members, seen).toEqual([])
        // the ten handled orders stay committed; the declined one is not, so it comes again after a restart
        expect(yield* committed).toBe(10)
      }).pipe(
        Effect.provide(
          Layer.unwrapEffect(Effect.map(DevCluster.DevCluster, (cluster) =>
            Layer.mergeAll(
              KafkaJs.layer({ brokers: cluster.brokers, logLevel: "nothing" }),
              KafkaProducerBackend.layer().pipe(
                Layer.provide(KafkaJs.layer({ brokers: cluster.brokers, logLevel: "nothing" }))
              )
            ))).pipe(
              Layer.provideMerge(DevCluster.layer({ port: 0, registryPort: 0, partitions: 2 })),
              Layer.merge(JsonBackend.layer),
              Layer.merge(DeimosConfig.layer({}))
            )
        ),
        Effect.scoped
      ),
    60_000
  )
})
