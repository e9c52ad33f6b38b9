import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { body, bytes, connect, i16, i32, i64, i8, type RawConnection, reader, recordBatch, str } from "./rawClient.js"

const connection = (broker: string) =>
  Effect.acquireRelease(Effect.promise(() => connect(broker)), (conn) => Effect.sync(() => conn.end()))

const request = (conn: RawConnection, apiKey: number, version: number, payload: Buffer) =>
  Effect.promise(() => conn.request(apiKey, version, payload))

/** Reads a nullable string (int16 length, -1 for null) at `at`; answers it and the offset after it. */
const nullableString = (buf: Buffer, at: number): readonly [string | null, number] => {
  const n = buf.readInt16BE(at)
  return n < 0 ? [null, at + 2] : [buf.toString("utf8", at + 2, at + 2 + n), at + 2 + n]
}

/** CreateTopics v1 of `topics` (name → partition count); answers each topic's error code and message. */
const createTopics = (
  conn: RawConnection,
  topics: ReadonlyArray<readonly [string, number]>,
  validateOnly = false
) =>
  Effect.map(
    request(
      conn,
      19,
      1,
      body(
        i32(topics.length),
        ...topics.map(([name, partitions]) => body(str(name), i32(partitions), i16(-1), i32(0), i32(0))),
        i32(10_000),
        i8(validateOnly ? 1 : 0)
      )
    ),
    (response) => {
      let at = 4
      return Array.from({ length: response.readInt32BE(0) }, () => {
        const [name, afterName] = nullableString(response, at)
        const error = response.readInt16BE(afterName)
        const [message, next] = nullableString(response, afterName + 2)
        at = next
        return { name, error, message }
      })
    }
  )

/** CreatePartitions v0 of one topic to `count`; answers its error code and message. */
const createPartitions = (conn: RawConnection, topic: string, count: number) =>
  Effect.map(
    request(conn, 37, 0, body(i32(1), str(topic), i32(count), i32(-1), i32(10_000), i8(0))),
    (response) => {
      const [, afterName] = nullableString(response, 8)
      return { error: response.readInt16BE(afterName), message: nullableString(response, afterName + 2)[0] }
    }
  )

/** Metadata v4 of one topic (auto-creation allowed): its error code. */
const metadata = (conn: RawConnection, topic: string) =>
  Effect.map(request(conn, 3, 4, body(i32(1), str(topic), i8(1))), (response) => {
    const r = reader(response)
    r.int32() // throttle
    for (let brokers = r.int32(); brokers > 0; brokers--) {
      r.int32()
      r.string()
      r.int32()
      r.string() // rack (null reads as "")
    }
    r.string() // cluster id
    r.int32() // controller
    r.int32() // one topic
    return { error: r.int16() }
  })

/** Produce v3 (acks 1) of one batch to every partition 0..count-1 of `topic`; answers the error codes. */
const produceToAll = (conn: RawConnection, topic: string, count: number) =>
  Effect.map(
    request(
      conn,
      0,
      3,
      body(
        i16(-1),
        i16(1),
        i32(10_000),
        i32(1),
        str(topic),
        i32(count),
        ...Array.from({ length: count }, (_, p) => body(i32(p), bytes(recordBatch(Buffer.from(`${topic}/${p}`)))))
      )
    ),
    (response) => {
      const r = reader(response)
      r.int32()
      r.string()
      return Array.from({ length: r.int32() }, () => {
        r.int32()
        const error = r.int16()
        r.int64()
        r.int64()
        return error
      })
    }
  )

/** Fetch v4 of offset 0 of every partition 0..count-1 of `topic`; answers each partition's records. */
const fetchAll = (conn: RawConnection, topic: string, count: number) =>
  Effect.map(
    request(
      conn,
      1,
      4,
      body(
        i32(-1),
        i32(0),
        i32(0),
        i32(64 << 20),
        i8(0),
        i32(1),
        str(topic),
        i32(count),
        ...Array.from({ length: count }, (_, p) => body(i32(p), i64(0), i32(1 << 20)))
      )
    ),
    (response) => {
      const r = reader(response)
      r.int32()
      r.int32()
      r.string()
      return Array.from({ length: r.int32() }, () => {
        r.int32()
        const error = r.int16()
        r.int64()
        r.int64()
        r.int32()
        return { error, records: r.bytes() }
      })
    }
  )

const openFileDescriptors = () => fs.readdirSync("/proc/self/fd").length

describe("dev broker partition limits", () => {
  it.scoped("numPartitions 2^31-1 is refused with INVALID_PARTITIONS at once, by CreateTopics and CreatePartitions", () =>
    Effect.gen(function*() {
      const broker = yield* KafkaBroker.make({ port: 0 })
      const conn = yield* connection(broker.broker)
      const [huge] = yield* createTopics(conn, [["huge", 2 ** 31 - 1]])
      expect(huge.error).toBe(37)
      expect(huge.message).toBe(
        "Number of partitions 2147483647 is above the limit of 1000 per topic (maxPartitionsPerTopic)."
      )
      const [small] = yield* createTopics(conn, [["small", 2]])
      expect(small.error).toBe(0)
      expect(yield* createPartitions(conn, "small", 2 ** 31 - 1)).toEqual({
        error: 37,
        message: "Number of partitions 2147483647 is above the limit of 1000 per topic (maxPartitionsPerTopic)."
      })
      // the topic kept its two partitions and the broker still answers
      expect(yield* createPartitions(conn, "small", 1)).toMatchObject({ error: 37 })
      expect(yield* createPartitions(conn, "small", 3)).toEqual({ error: 0, message: null })
    }))

  it.scoped("partitions per topic and per broker are capped, counting what the request itself creates", () =>
    Effect.gen(function*() {
      const broker = yield* KafkaBroker.make({ port: 0, partitions: 3, maxPartitionsPerTopic: 10, maxPartitions: 25 })
      const conn = yield* connection(broker.broker)
      expect(yield* createTopics(conn, [["eleven", 11], ["ten-a", 10], ["ten-b", 10], ["ten-c", 10]])).toEqual([
        {
          name: "eleven",
          error: 37,
          message: "Number of partitions 11 is above the limit of 10 per topic (maxPartitionsPerTopic)."
        },
        { name: "ten-a", error: 0, message: null },
        { name: "ten-b", error: 0, message: null },
        {
          name: "ten-c",
          error: 37,
          message:
            "Adding 10 partitions would give the broker 30, above its limit of 25 (maxPartitions); it has 20 now."
        }
      ])
      // validate-only requests are checked the same way and create nothing
      expect(yield* createTopics(conn, [["five", 5]], true)).toEqual([{ name: "five", error: 0, message: null }])
      expect((yield* createTopics(conn, [["six", 6]], true))[0].error).toBe(37)
      expect(yield* createPartitions(conn, "ten-a", 11)).toEqual({
        error: 37,
        message: "Number of partitions 11 is above the limit of 10 per topic (maxPartitionsPerTopic)."
      })
      expect(yield* createTopics(conn, [["four", 4]])).toEqual([{ name: "four", error: 0, message: null }])
      expect(yield* createPartitions(conn, "four", 6)).toEqual({
        error: 37,
        message: "Adding 2 partitions would give the broker 26, above its limit of 25 (maxPartitions); it has 24 now."
      })
      // an auto-created topic (3 partitions) no longer fits: Metadata answers INVALID_PARTITIONS, nothing is created
      expect((yield* metadata(conn, "auto")).error).toBe(37)
      expect(yield* createPartitions(conn, "four", 5)).toEqual({ error: 0, message: null })
      expect(yield* createPartitions(conn, "auto", 2)).toMatchObject({ error: 3 })
    }))

  it.scoped.skipIf(!fs.existsSync("/proc/self/fd"))(
    "with a data directory, 2,000 partitions do not hold 2,000 files open; every one is written and read back",
    () =>
      Effect.gen(function*() {
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "deimos-broker-fds-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dataDir, { recursive: true, force: true })))
        const before = openFileDescriptors()
        yield* Effect.scoped(Effect.gen(function*() {
          const broker = yield* KafkaBroker.make({ port: 0, dataDir })
          const conn = yield* connection(broker.broker)
          expect((yield* createTopics(conn, [["many-a", 1000], ["many-b", 1000]])).map((t) => t.error)).toEqual([0, 0])
          // the listening socket and the connection, no log files yet
          expect(openFileDescriptors() - before).toBeLessThan(10)
          for (const topic of ["many-a", "many-b"]) {
            expect(new Set(yield* produceToAll(conn, topic, 1000))).toEqual(new Set([0]))
          }
          expect(openFileDescriptors() - before).toBeLessThanOrEqual(128 + 10)
        }))
        const broker = yield* KafkaBroker.make({ port: 0, dataDir })
        const conn = yield* connection(broker.broker)
        for (const topic of ["many-a", "many-b"]) {
          const partitions = yield* fetchAll(conn, topic, 1000)
          expect(partitions.filter((p) => p.error !== 0)).toEqual([])
          partitions.forEach((p, i) => expect(p.records.includes(Buffer.from(`${topic}/${i}`))).toBe(true))
        }
      })
  )

  it.scoped("a data directory whose topics.json is above the limits fails with LoadState, naming the topic", () =>
    Effect.gen(function*() {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "deimos-broker-limits-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dataDir, { recursive: true, force: true })))
      fs.writeFileSync(path.join(dataDir, "topics.json"), JSON.stringify({ fine: 3, huge: 2 ** 31 - 1 }))
      const error = yield* Effect.flip(KafkaBroker.make({ port: 0, dataDir }))
      expect(error).toMatchObject({ _tag: "KafkaBrokerError", reason: "LoadState" })
      expect(String(error.cause)).toContain(
        "topic huge with 2147483647 partitions is above the limits (maxPartitionsPerTopic 1000, maxPartitions 10000)"
      )
      fs.writeFileSync(path.join(dataDir, "topics.json"), JSON.stringify({ fine: 3, odd: -1 }))
      const odd = yield* Effect.flip(KafkaBroker.make({ port: 0, dataDir }))
      expect(String(odd.cause)).toContain("topic odd has -1 partitions")
    }))

  it.scoped("a partition file that cannot be written is KAFKA_STORAGE_ERROR (56); the log continues once it can", () =>
    Effect.gen(function*() {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "deimos-broker-storage-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dataDir, { recursive: true, force: true })))
      const broker = yield* KafkaBroker.make({ port: 0, dataDir })
      const conn = yield* connection(broker.broker)
      expect((yield* createTopics(conn, [["blocked", 1]]))[0].error).toBe(0)
      const file = path.join(dataDir, "logs", "blocked-0.log")
      // a directory where the log file should be: opening it for appending fails
      fs.mkdirSync(file)
      expect(yield* produceToAll(conn, "blocked", 1)).toEqual([56])
      fs.rmdirSync(file)
      expect(yield* produceToAll(conn, "blocked", 1)).toEqual([0])
      const [partition] = yield* fetchAll(conn, "blocked", 1)
      expect(partition.records.readBigInt64BE(0)).toBe(0n) // the failed batch took no offset
      expect(partition.records.length).toBe(fs.statSync(file).size)
    }))
})
