import { KafkaBroker } from "@deimos/broker"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { body, bytes, connect, i16, i32, i64, i8, produceResult, produceV3, recordBatch, str } from "./rawClient.js"

const produceError = (response: Buffer) => produceResult(response).error

const metadataV1 = body(i32(-1))

describe("dev broker bad input", () => {
  it.layer(KafkaBroker.layer({ port: 0, maxMessageBytes: 4096, maxFrameBytes: 64 * 1024 }))((it) => {
    const withConnections = <A>(f: (broker: string) => Promise<A>) =>
      Effect.flatMap(KafkaBroker.KafkaBroker, (b) => Effect.promise(() => f(b.broker)))

    /** The broker still serves a fresh client. */
    const stillServing = async (broker: string) => {
      const other = await connect(broker)
      const response = await other.request(3, 1, metadataV1)
      other.end()
      return response.length > 0
    }

    it.effect("garbage bytes close only that connection", () =>
      withConnections(async (broker) => {
        const bad = await connect(broker)
        const good = await connect(broker)
        bad.write(Buffer.concat([i32(12), Buffer.from("garbage!garb")]))
        await bad.closed
        expect(bad.isClosed()).toBe(true)
        expect((await good.request(3, 1, metadataV1)).length).toBeGreaterThan(0)
        good.end()
      }))

    it.effect("a truncated request closes the connection", () =>
      withConnections(async (broker) => {
        const conn = await connect(broker)
        // Produce v3 header then a body cut short in the middle of the topic name
        const header = Buffer.concat([i16(0), i16(3), i32(1), str("raw")])
        const truncated = Buffer.concat([i16(-1), i16(1), i32(1000), i32(1), i16(40), Buffer.from("short")])
        conn.write(Buffer.concat([i32(header.length + truncated.length), header, truncated]))
        await conn.closed
        expect(await stillServing(broker)).toBe(true)
      }))

    it.effect("a frame larger than the maximum closes the connection", () =>
      withConnections(async (broker) => {
        const conn = await connect(broker)
        conn.write(i32(10 * 1024 * 1024))
        await conn.closed
        expect(await stillServing(broker)).toBe(true)
      }))

    it.effect("an unknown API key closes the connection", () =>
      withConnections(async (broker) => {
        const conn = await connect(broker)
        await expect(conn.request(999, 0, Buffer.alloc(0))).rejects.toThrow("connection closed")
        expect(await stillServing(broker)).toBe(true)
      }))

    it.effect("an unsupported version is answered with error 35; ApiVersions with its list", () =>
      withConnections(async (broker) => {
        const conn = await connect(broker)
        const metadata = await conn.request(3, 99, Buffer.alloc(0))
        expect(metadata.readInt16BE(0)).toBe(35)
        const versions = await conn.request(18, 3, Buffer.alloc(0))
        expect(versions.readInt16BE(0)).toBe(35)
        expect(versions.readInt32BE(2)).toBe(22)
        const keys = Array.from({ length: 22 }, (_, i) => versions.readInt16BE(6 + i * 6))
        expect(keys).toContain(0)
        expect(keys).toContain(42)
        // the connection keeps working
        expect((await conn.request(18, 2, Buffer.alloc(0))).readInt16BE(0)).toBe(0)
        conn.end()
      }))

    it.effect("a produce with a bad CRC is rejected with error 2; a good one is accepted", () =>
      withConnections(async (broker) => {
        const conn = await connect(broker)
        const bad = await conn.request(0, 3, produceV3("crc", recordBatch(Buffer.from("hello"), { corrupt: true })))
        expect(produceError(bad)).toBe(2)
        const good = await conn.request(0, 3, produceV3("crc", recordBatch(Buffer.from("hello"))))
        expect(produceError(good)).toBe(0)
        conn.end()
      }))

    it.effect("a batch larger than the maximum message size is rejected with error 10", () =>
      withConnections(async (broker) => {
        const conn = await connect(broker)
        const response = await conn.request(0, 3, produceV3("big", recordBatch(Buffer.alloc(5000, 1))))
        expect(produceError(response)).toBe(10)
        conn.end()
      }))

    it.effect("a fetch past the end of the log is error 1 (OFFSET_OUT_OF_RANGE)", () =>
      withConnections(async (broker) => {
        const conn = await connect(broker)
        await conn.request(0, 3, produceV3("range", recordBatch(Buffer.from("x"))))
        // Fetch v4: replica, max wait, min bytes, max bytes, isolation, topics
        const fetch = (offset: number) =>
          conn.request(
            1,
            4,
            body(
              i32(-1),
              i32(0),
              i32(0),
              i32(1 << 20),
              i8(0),
              i32(1),
              str("range"),
              i32(1),
              i32(0),
              i64(offset),
              i32(1 << 20)
            )
          )
        const errorOf = (r: Buffer) => r.readInt16BE(4 + 4 + 2 + "range".length + 4 + 4)
        expect(errorOf(await fetch(0))).toBe(0)
        expect(errorOf(await fetch(1))).toBe(0)
        expect(errorOf(await fetch(50))).toBe(1)
        conn.end()
      }))

    it.effect("commits from a stale generation or an unknown member are rejected", () =>
      withConnections(async (broker) => {
        const conn = await connect(broker)
        await conn.request(0, 3, produceV3("commits", recordBatch(Buffer.from("x"))))
        // JoinGroup v1: group, session timeout, rebalance timeout, member id, protocol type, protocols
        const join = await conn.request(
          11,
          1,
          body(
            str("stale-g"),
            i32(10_000),
            i32(10_000),
            str(""),
            str("consumer"),
            i32(1),
            str("range"),
            bytes(Buffer.alloc(0))
          )
        )
        expect(join.readInt16BE(0)).toBe(0)
        const generation = join.readInt32BE(2)
        let at = 6
        at += 2 + join.readInt16BE(at) // protocol
        at += 2 + join.readInt16BE(at) // leader
        const memberId = join.toString("utf8", at + 2, at + 2 + join.readInt16BE(at))
        const commit = (gen: number, member: string) =>
          conn.request(
            8,
            2,
            body(
              str("stale-g"),
              i32(gen),
              str(member),
              i64(-1),
              i32(1),
              str("commits"),
              i32(1),
              i32(0),
              i64(1),
              i16(-1)
            )
          )
        const errorOf = (r: Buffer) => r.readInt16BE(4 + 2 + "commits".length + 4 + 4)
        // sync to become Stable, then commit
        const sync = await conn.request(14, 0, body(str("stale-g"), i32(generation), str(memberId), i32(0)))
        expect(sync.readInt16BE(0)).toBe(0)
        expect(errorOf(await commit(generation, memberId))).toBe(0)
        expect(errorOf(await commit(generation - 1, memberId))).toBe(22)
        expect(errorOf(await commit(generation, "nobody"))).toBe(25)
        conn.end()
      }))
  })
})
