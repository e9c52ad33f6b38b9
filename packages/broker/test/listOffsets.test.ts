import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { describe, expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import {
  body,
  Compression,
  connect,
  i32,
  i64,
  i8,
  produceResult,
  produceV3,
  type RawConnection,
  reader,
  recordBatchOf,
  str
} from "./rawClient.js"

const connection = Effect.flatMap(
  KafkaBroker.KafkaBroker,
  (broker) =>
    Effect.acquireRelease(Effect.promise(() => connect(broker.broker)), (conn) => Effect.sync(() => conn.end()))
)

const request = (conn: RawConnection, apiKey: number, version: number, payload: Buffer) =>
  Effect.promise(() => conn.request(apiKey, version, payload))

const produce = (conn: RawConnection, topic: string, batch: Buffer, version = 3) =>
  Effect.map(request(conn, 0, version, produceV3(topic, batch)), produceResult)

/** ListOffsets v1 (v2 with `version: 2`) of partition 0 of `topic` at `timestamp`: the answer's four fields. */
const listOffsets = (conn: RawConnection, topic: string, timestamp: number, version: 1 | 2 = 1) =>
  Effect.map(
    request(
      conn,
      2,
      version,
      body(i32(-1), ...(version === 2 ? [i8(0)] : []), i32(1), str(topic), i32(1), i32(0), i64(timestamp))
    ),
    (response) => {
      const r = reader(response)
      if (version === 2) r.int32() // throttle
      r.int32()
      r.string()
      r.int32()
      return { partition: r.int32(), error: r.int16(), timestamp: Number(r.int64()), offset: Number(r.int64()) }
    }
  )

/** ListOffsets v0 of partition 0 of `topic` before `timestamp` (at most one offset): the offsets answered. */
const listOffsetsV0 = (conn: RawConnection, topic: string, timestamp: number) =>
  Effect.map(request(conn, 2, 0, body(i32(-1), i32(1), str(topic), i32(1), i32(0), i64(timestamp), i32(1))), (r) => {
    const read = reader(r)
    read.int32()
    read.string()
    read.int32()
    read.int32()
    expect(read.int16()).toBe(0)
    return Array.from({ length: read.int32() }, () => Number(read.int64()))
  })

/** Fetch at `version` of partition 0 of `topic` from `offset`: the error code and the base offsets served. */
const fetch = (conn: RawConnection, topic: string, offset: number, version: number) =>
  Effect.map(
    request(
      conn,
      1,
      version,
      body(
        i32(-1),
        i32(0),
        i32(0),
        i32(1 << 20),
        i8(0),
        ...(version >= 7 ? [i32(0), i32(-1)] : []), // session id, epoch: no session
        i32(1),
        str(topic),
        i32(1),
        i32(0),
        ...(version >= 9 ? [i32(-1)] : []), // current leader epoch
        i64(offset),
        ...(version >= 5 ? [i64(0)] : []), // log start offset
        i32(1 << 20),
        ...(version >= 7 ? [i32(0)] : []), // forgotten topics
        ...(version >= 11 ? [str("")] : []) // rack id
      )
    ),
    (response) => {
      const r = reader(response)
      r.int32() // throttle
      if (version >= 7) {
        expect(r.int16()).toBe(0)
        r.int32() // session id
      }
      r.int32()
      r.string()
      r.int32()
      r.int32()
      const error = r.int16()
      r.int64() // high watermark
      r.int64() // last stable offset
      if (version >= 5) r.int64() // log start offset
      r.int32() // aborted transactions
      if (version >= 11) r.int32() // preferred read replica
      const records = r.bytes()
      const baseOffsets: Array<number> = []
      for (let at = 0; at < records.length; at += 12 + records.readInt32BE(at + 8)) {
        baseOffsets.push(Number(records.readBigInt64BE(at)))
      }
      return { error, baseOffsets }
    }
  )

const t0 = Date.parse("2026-01-01T00:00:00Z")

describe("dev broker ListOffsets and compression by Fetch version", () => {
  layer(KafkaBroker.layer({ port: 0, partitions: 1 }), { excludeTestServices: true })((it) => {
    it.scoped("by timestamp: the first record at or after it, with its own timestamp, inside plain and gzip batches", () =>
      Effect.gen(function*() {
        const conn = yield* connection
        const plain = recordBatchOf(
          [0, 1000, 2000, 3000].map((delta) => ({ value: `plain+${delta}`, timestampDelta: delta })),
          { firstTimestamp: t0 }
        )
        const gzip = recordBatchOf(
          [10_000, 11_000, 12_000].map((delta) => ({ value: `gzip+${delta}`, timestampDelta: delta - 10_000 })),
          { firstTimestamp: t0 + 10_000, compression: Compression.gzip }
        )
        expect(yield* produce(conn, "by-time", plain)).toEqual({ error: 0, baseOffset: 0 })
        expect(yield* produce(conn, "by-time", gzip)).toEqual({ error: 0, baseOffset: 4 })
        const at = (delta: number) =>
          Effect.map(listOffsets(conn, "by-time", t0 + delta), (o) => [o.offset, o.timestamp])
        expect(yield* at(-5)).toEqual([0, t0])
        expect(yield* at(0)).toEqual([0, t0])
        expect(yield* at(1500)).toEqual([2, t0 + 2000])
        expect(yield* at(3000)).toEqual([3, t0 + 3000])
        expect(yield* at(3001)).toEqual([4, t0 + 10_000])
        expect(yield* at(11_500)).toEqual([6, t0 + 12_000])
        // after every record: offset -1 and timestamp -1, as Kafka answers
        expect(yield* listOffsets(conn, "by-time", t0 + 12_001)).toEqual({
          partition: 0,
          error: 0,
          timestamp: -1,
          offset: -1
        })
        // latest and earliest answer timestamp -1 and the log end / start
        expect(yield* listOffsets(conn, "by-time", -1)).toMatchObject({ timestamp: -1, offset: 7 })
        expect(yield* listOffsets(conn, "by-time", -2)).toMatchObject({ timestamp: -1, offset: 0 })
        // v2 answers the same
        expect(yield* listOffsets(conn, "by-time", t0 + 1500, 2)).toEqual({
          partition: 0,
          error: 0,
          timestamp: t0 + 2000,
          offset: 2
        })
        // v0 keeps its old shape: one offset, the log end when no record is that late
        expect(yield* listOffsetsV0(conn, "by-time", t0 + 1500)).toEqual([2])
        expect(yield* listOffsetsV0(conn, "by-time", t0 + 12_001)).toEqual([7])
      }))

    it.scoped("in a batch the broker cannot decompress (zstd, lz4, snappy): its base offset, with a record's timestamp", () =>
      Effect.gen(function*() {
        const conn = yield* connection
        for (const [i, compression] of [Compression.zstd, Compression.lz4, Compression.snappy].entries()) {
          const topic = `opaque-${compression}`
          const batch = recordBatchOf(
            [0, 1000, 2000].map((delta) => ({ value: `v${delta}`, timestampDelta: delta })),
            { firstTimestamp: t0 + i, compression }
          )
          expect((yield* produce(conn, topic, batch, 7)).error).toBe(0)
          // at or before the first record: exact
          expect(yield* listOffsets(conn, topic, t0 + i)).toMatchObject({ offset: 0, timestamp: t0 + i })
          // inside the batch: its start (nothing is skipped) with its max timestamp (a record's, at or after it)
          expect(yield* listOffsets(conn, topic, t0 + i + 500)).toMatchObject({ offset: 0, timestamp: t0 + i + 2000 })
          expect(yield* listOffsets(conn, topic, t0 + i + 2001)).toMatchObject({ offset: -1, timestamp: -1 })
        }
      }))

    it.scoped("zstd batches are refused with UNSUPPORTED_COMPRESSION_TYPE (76) to Fetch below v10 and Produce below v7", () =>
      Effect.gen(function*() {
        const conn = yield* connection
        const batch = (compression: number) =>
          recordBatchOf([{ value: "x", timestampDelta: 0 }], { firstTimestamp: t0, compression })
        expect(yield* produce(conn, "zstd", batch(Compression.zstd), 6)).toEqual({ error: 76, baseOffset: -1 })
        expect(yield* produce(conn, "zstd", batch(Compression.gzip), 6)).toEqual({ error: 0, baseOffset: 0 })
        expect(yield* produce(conn, "zstd", batch(Compression.zstd), 7)).toEqual({ error: 0, baseOffset: 1 })
        expect(yield* produce(conn, "zstd", batch(Compression.none), 7)).toEqual({ error: 0, baseOffset: 2 })
        for (const version of [4, 7, 9]) {
          // the batches before the zstd one are served; from the zstd one on, error 76 and no records
          expect({ version, ...(yield* fetch(conn, "zstd", 0, version)) }).toEqual({
            version,
            error: 0,
            baseOffsets: [0]
          })
          expect({ version, ...(yield* fetch(conn, "zstd", 1, version)) }).toEqual({
            version,
            error: 76,
            baseOffsets: []
          })
          expect({ version, ...(yield* fetch(conn, "zstd", 2, version)) }).toEqual({
            version,
            error: 0,
            baseOffsets: [2]
          })
        }
        for (const version of [10, 11]) {
          expect({ version, ...(yield* fetch(conn, "zstd", 0, version)) }).toEqual({
            version,
            error: 0,
            baseOffsets: [0, 1, 2]
          })
        }
      }))
  })
})
