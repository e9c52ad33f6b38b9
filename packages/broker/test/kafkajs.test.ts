import { DevCluster } from "@deimos/broker"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { CompressionTypes, type EachMessagePayload, Kafka, logLevel } from "kafkajs"

const kafkaFor = (brokers: ReadonlyArray<string>, clientId = "broker-test") =>
  new Kafka({ brokers: [...brokers], clientId, logLevel: logLevel.NOTHING, retry: { retries: 3 } })

const use = <A>(f: (kafka: Kafka) => Promise<A>) =>
  Effect.flatMap(DevCluster.DevCluster, (cluster) => Effect.promise(() => f(kafkaFor(cluster.brokers))))

/** Collects messages from a consumer until `count` arrived. */
const collect = (
  consumer: ReturnType<Kafka["consumer"]>,
  count: number,
  seen: Array<EachMessagePayload> = []
) =>
  new Promise<Array<EachMessagePayload>>((resolve) => {
    void consumer.run({
      eachMessage: async (payload) => {
        seen.push(payload)
        if (seen.length >= count) resolve(seen)
      }
    })
  })

describe("dev broker with kafkajs", () => {
  it.layer(DevCluster.layer({ port: 0, partitions: 3 }), { timeout: 60_000 })((it) => {
    it.effect("produces with keys and headers and consumes from the beginning, tombstones and null keys included", () =>
      use(async (kafka) => {
        const producer = kafka.producer()
        await producer.connect()
        await producer.send({
          topic: "roundtrip",
          messages: [
            { key: "k1", value: "v1", headers: { trace: "abc", bin: Buffer.from([0, 1]) } },
            { key: "k2", value: null },
            { key: null, value: "no-key" }
          ]
        })
        const consumer = kafka.consumer({ groupId: "roundtrip-g" })
        await consumer.connect()
        await consumer.subscribe({ topic: "roundtrip", fromBeginning: true })
        const seen = await collect(consumer, 3)
        await consumer.disconnect()
        await producer.disconnect()
        const byValue = new Map(seen.map((s) => [s.message.value?.toString() ?? "<null>", s.message]))
        expect(byValue.get("v1")?.key?.toString()).toBe("k1")
        expect(byValue.get("v1")?.headers?.trace?.toString()).toBe("abc")
        expect([...(byValue.get("v1")?.headers?.bin as Buffer)]).toEqual([0, 1])
        expect(byValue.get("<null>")?.key?.toString()).toBe("k2")
        expect(byValue.get("no-key")?.key).toBeNull()
      }))

    it.effect("admin creates, lists and deletes topics and reports offsets", () =>
      use(async (kafka) => {
        const admin = kafka.admin()
        await admin.connect()
        expect(await admin.createTopics({ topics: [{ topic: "admin-t", numPartitions: 2 }] })).toBe(true)
        expect(await admin.createTopics({ topics: [{ topic: "admin-t", numPartitions: 2 }] })).toBe(false)
        const producer = kafka.producer()
        await producer.connect()
        await producer.send({
          topic: "admin-t",
          messages: [{ value: "a", partition: 1 }, { value: "b", partition: 1 }]
        })
        const offsets = await admin.fetchTopicOffsets("admin-t")
        expect(offsets.sort((a, b) => a.partition - b.partition)).toEqual([
          { partition: 0, offset: "0", high: "0", low: "0" },
          { partition: 1, offset: "2", high: "2", low: "0" }
        ])
        await admin.createPartitions({ topicPartitions: [{ topic: "admin-t", count: 4 }] })
        const metadata = await admin.fetchTopicMetadata({ topics: ["admin-t"] })
        expect(metadata.topics[0].partitions).toHaveLength(4)
        await admin.deleteTopics({ topics: ["admin-t"] })
        expect(await admin.listTopics()).not.toContain("admin-t")
        await producer.disconnect()
        await admin.disconnect()
      }))

    it.effect("commits offsets and a new consumer of the group resumes after them", () =>
      use(async (kafka) => {
        const admin = kafka.admin()
        await admin.connect()
        await admin.createTopics({ topics: [{ topic: "resume", numPartitions: 1 }] })
        const producer = kafka.producer()
        await producer.connect()
        await producer.send({ topic: "resume", messages: [1, 2, 3].map((i) => ({ value: `m${i}` })) })
        const first = kafka.consumer({ groupId: "resume-g" })
        await first.connect()
        await first.subscribe({ topic: "resume", fromBeginning: true })
        await collect(first, 3)
        await first.commitOffsets([{ topic: "resume", partition: 0, offset: "3" }])
        await first.disconnect()
        expect(await admin.fetchOffsets({ groupId: "resume-g", topics: ["resume"] })).toEqual([
          { topic: "resume", partitions: [{ partition: 0, offset: "3", metadata: null }] }
        ])
        await producer.send({ topic: "resume", messages: [{ value: "m4" }] })
        const second = kafka.consumer({ groupId: "resume-g" })
        await second.connect()
        await second.subscribe({ topic: "resume", fromBeginning: true })
        const seen = await collect(second, 1)
        await second.disconnect()
        expect(seen.map((s) => [s.message.offset, s.message.value?.toString()])).toEqual([["3", "m4"]])
        await producer.disconnect()
        await admin.disconnect()
      }))

    it.effect("two consumers of one group share the partitions, and one takes all when the other leaves", () =>
      use(async (kafka) => {
        const admin = kafka.admin()
        await admin.connect()
        await admin.createTopics({ topics: [{ topic: "rebalance", numPartitions: 4 }] })
        const assigned = (c: ReturnType<Kafka["consumer"]>) =>
          new Promise<Array<number>>((resolve) => {
            c.on(c.events.GROUP_JOIN, (e) => resolve(e.payload.memberAssignment.rebalance ?? []))
          })
        const a = kafka.consumer({
          groupId: "rebalance-g",
          sessionTimeout: 6000,
          heartbeatInterval: 200,
          maxWaitTimeInMs: 100
        })
        await a.connect()
        await a.subscribe({ topic: "rebalance" })
        const aFirst = assigned(a)
        await a.run({ eachMessage: async () => {} })
        expect((await aFirst).sort()).toEqual([0, 1, 2, 3])
        const b = kafka.consumer({
          groupId: "rebalance-g",
          sessionTimeout: 6000,
          heartbeatInterval: 200,
          maxWaitTimeInMs: 100
        })
        await b.connect()
        await b.subscribe({ topic: "rebalance" })
        const aSecond = assigned(a)
        const bFirst = assigned(b)
        await b.run({ eachMessage: async () => {} })
        const [aShare, bShare] = await Promise.all([aSecond, bFirst])
        expect(aShare.length + bShare.length).toBe(4)
        expect([...aShare, ...bShare].sort()).toEqual([0, 1, 2, 3])
        expect(aShare.length).toBeGreaterThan(0)
        expect(bShare.length).toBeGreaterThan(0)
        const aThird = assigned(a)
        await b.disconnect()
        expect((await aThird).sort()).toEqual([0, 1, 2, 3])
        const group = await admin.describeGroups(["rebalance-g"])
        expect(group.groups[0].state).toBe("Stable")
        expect(group.groups[0].members).toHaveLength(1)
        await a.disconnect()
        await admin.disconnect()
      }))

    it.effect("idempotent producers get producer ids and their retried batches are not duplicated", () =>
      use(async (kafka) => {
        const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
        await producer.connect()
        await producer.send({ topic: "idem", messages: [{ key: "a", value: "1" }, { key: "a", value: "2" }] })
        await producer.send({ topic: "idem", messages: [{ key: "a", value: "3" }] })
        const admin = kafka.admin()
        await admin.connect()
        const offsets = await admin.fetchTopicOffsets("idem")
        expect(offsets.reduce((n, o) => n + Number(o.high), 0)).toBe(3)
        await producer.disconnect()
        await admin.disconnect()
      }))

    it.effect("gzip batches pass through and decode on the consumer", () =>
      use(async (kafka) => {
        const producer = kafka.producer()
        await producer.connect()
        await producer.send({
          topic: "gzip",
          compression: CompressionTypes.GZIP,
          messages: Array.from({ length: 20 }, (_, i) => ({ key: "same", value: `compressed-${i}`.repeat(10) }))
        })
        const consumer = kafka.consumer({ groupId: "gzip-g" })
        await consumer.connect()
        await consumer.subscribe({ topic: "gzip", fromBeginning: true })
        const seen = await collect(consumer, 20)
        await consumer.disconnect()
        await producer.disconnect()
        expect(seen.map((s) => s.message.value?.toString())).toEqual(
          Array.from({ length: 20 }, (_, i) => `compressed-${i}`.repeat(10))
        )
      }))
  })
})
