import { DevCluster, KafkaBroker } from "@deimos/broker"
import { describe, expect, it } from "@effect/vitest"
import { SchemaRegistry as Client, SchemaType } from "@kafkajs/confluent-schema-registry"
import * as Effect from "effect/Effect"
import { Kafka, logLevel } from "kafkajs"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const kafkaFor = (brokers: ReadonlyArray<string>) =>
  new Kafka({ brokers: [...brokers], clientId: "persist", logLevel: logLevel.NOTHING })

describe("dev cluster with a data directory", () => {
  it.live("keeps messages, committed offsets and schemas across a restart", () =>
    Effect.gen(function*() {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "deimos-broker-"))
      const schema = { type: "record", name: "P", namespace: "t", fields: [{ name: "id", type: "int" }] }

      const firstId = yield* Effect.scoped(Effect.gen(function*() {
        const cluster = yield* DevCluster.make({ port: 0, registryPort: 0, dataDir, partitions: 2 })
        return yield* Effect.promise(async () => {
          const kafka = kafkaFor(cluster.brokers)
          const producer = kafka.producer()
          await producer.connect()
          await producer.send({
            topic: "kept",
            messages: Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: i % 2 }))
          })
          await producer.disconnect()
          const admin = kafka.admin()
          await admin.connect()
          await admin.setOffsets({ groupId: "kept-g", topic: "kept", partitions: [{ partition: 0, offset: "3" }] })
          await admin.disconnect()
          const registry = new Client({ host: cluster.registryUrl })
          const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, {
            subject: "kept-value"
          })
          return id
        })
      }))

      yield* Effect.scoped(Effect.gen(function*() {
        const cluster = yield* DevCluster.make({ port: 0, registryPort: 0, dataDir })
        const result = yield* Effect.promise(async () => {
          const kafka = kafkaFor(cluster.brokers)
          const admin = kafka.admin()
          await admin.connect()
          const offsets = await admin.fetchTopicOffsets("kept")
          const committed = await admin.fetchOffsets({ groupId: "kept-g", topics: ["kept"] })
          await admin.disconnect()
          const consumer = kafka.consumer({ groupId: "kept-g" })
          await consumer.connect()
          await consumer.subscribe({ topic: "kept", fromBeginning: true })
          const values: Array<string> = []
          await new Promise<void>((resolve) => {
            void consumer.run({
              eachMessage: async ({ message }) => {
                values.push(message.value!.toString())
                if (values.length === 7) resolve()
              }
            })
          })
          await consumer.disconnect()
          const registry = new Client({ host: cluster.registryUrl })
          const latest = await registry.getLatestSchemaId("kept-value")
          const again = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, {
            subject: "kept-value"
          })
          return { offsets, committed, values, latest, again: again.id }
        })
        expect(result.offsets.map((o) => o.high).sort()).toEqual(["5", "5"])
        expect(result.committed[0].partitions.find((p) => p.partition === 0)?.offset).toBe("3")
        // partition 0 resumes after the committed offset 3 (v6, v8), partition 1 from the beginning
        expect(result.values.sort()).toEqual(["v1", "v3", "v5", "v6", "v7", "v8", "v9"])
        expect(result.latest).toBe(firstId)
        expect(result.again).toBe(firstId)
      }))
      fs.rmSync(dataDir, { recursive: true, force: true })
    }), { timeout: 60_000 })

  it.scoped("a data directory that is not broker state fails with LoadState; a taken port with Listen", () =>
    Effect.gen(function*() {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "deimos-broker-bad-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dataDir, { recursive: true, force: true })))
      fs.writeFileSync(path.join(dataDir, "topics.json"), "{ not json")
      const load = yield* Effect.flip(KafkaBroker.make({ port: 0, dataDir }))
      expect(load).toMatchObject({ _tag: "KafkaBrokerError", reason: "LoadState" })
      expect(load.cause).toBeInstanceOf(SyntaxError)

      const running = yield* KafkaBroker.make({ port: 0 })
      const taken = yield* Effect.flip(Effect.scoped(KafkaBroker.make({ port: running.port })))
      expect(taken).toMatchObject({ _tag: "KafkaBrokerError", reason: "Listen" })
      expect(taken.message).toContain(`127.0.0.1:${running.port}`)
    }))
})
