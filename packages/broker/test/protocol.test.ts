import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { crc32c } from "../src/internal/crc32c.js"
import {
  body,
  bytes,
  connect,
  i16,
  i32,
  i64,
  i8,
  produceResult,
  produceV3,
  type RawConnection,
  reader,
  recordBatch,
  str
} from "./rawClient.js"

const request = (conn: RawConnection, apiKey: number, version: number, payload: Buffer) =>
  Effect.promise(() => conn.request(apiKey, version, payload))

const connection = (broker: string) =>
  Effect.acquireRelease(Effect.promise(() => connect(broker)), (conn) => Effect.sync(() => conn.end()))

const broker = Effect.map(KafkaBroker.KafkaBroker, (b) => b.broker)

/** JoinGroup v1 with the "consumer" protocol type and one protocol, "range". */
const joinGroup = (conn: RawConnection, group: string, memberId: string, sessionTimeout: number) =>
  Effect.map(
    request(
      conn,
      11,
      1,
      body(
        str(group),
        i32(sessionTimeout),
        i32(5_000),
        str(memberId),
        str("consumer"),
        i32(1),
        str("range"),
        bytes(Buffer.from("meta"))
      )
    ),
    (response) => {
      const r = reader(response)
      const error = r.int16()
      const generation = r.int32()
      const protocol = r.string()
      const leader = r.string()
      const member = r.string()
      const members = Array.from({ length: r.int32() }, () => ({ memberId: r.string(), metadata: r.bytes() }))
      return { error, generation, protocol, leader, memberId: member, members }
    }
  )

/** SyncGroup v0; the leader hands every member an assignment named after it. */
const syncGroup = (
  conn: RawConnection,
  group: string,
  generation: number,
  memberId: string,
  assignments: ReadonlyArray<string> = []
) =>
  Effect.map(
    request(
      conn,
      14,
      0,
      body(
        str(group),
        i32(generation),
        str(memberId),
        i32(assignments.length),
        ...assignments.map((m) => body(str(m), bytes(Buffer.from(`for ${m}`))))
      )
    ),
    (response) => {
      const r = reader(response)
      return { error: r.int16(), assignment: r.bytes().toString() }
    }
  )

const heartbeat = (conn: RawConnection, group: string, generation: number, memberId: string) =>
  Effect.map(request(conn, 12, 0, body(str(group), i32(generation), str(memberId))), (r) => r.readInt16BE(0))

/** DescribeGroups v0 of one group: state and member ids. */
const describeGroup = (conn: RawConnection, group: string) =>
  Effect.map(request(conn, 15, 0, body(i32(1), str(group))), (response) => {
    const r = reader(response)
    r.int32()
    const error = r.int16()
    r.string()
    const state = r.string()
    r.string()
    r.string()
    const members = Array.from({ length: r.int32() }, () => {
      const id = r.string()
      r.string()
      r.string()
      r.bytes()
      r.bytes()
      return id
    })
    return { error, state, members }
  })

describe("dev broker protocol", () => {
  it("CRC-32C matches the Castagnoli check value", () => {
    expect(crc32c(Buffer.from("123456789"))).toBe(0xe3069283)
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa)
    // the sliced and the bytewise loops agree on every length and offset
    const data = Buffer.from(Array.from({ length: 100 }, (_, i) => (i * 37 + 11) & 0xff))
    expect(crc32c(data, 3, 77)).toBe(crc32c(Buffer.from(data.subarray(3, 77))))
  })

  // live clock: session expiry and the polling below run in real time
  layer(KafkaBroker.layer({ port: 0, partitions: 1 }), { excludeTestServices: true })((it) => {
    it.scoped("ApiVersions advertises min 0 and the documented max version of every API", () =>
      Effect.gen(function*() {
        const conn = yield* connection(yield* broker)
        const r = reader(yield* request(conn, 18, 2, Buffer.alloc(0)))
        expect(r.int16()).toBe(0)
        const versions = new Map(Array.from({ length: r.int32() }, () => [r.int16(), [r.int16(), r.int16()]]))
        expect(Object.fromEntries(versions)).toEqual({
          0: [0, 7], // Produce
          1: [0, 11], // Fetch
          2: [0, 2], // ListOffsets
          3: [0, 6], // Metadata
          8: [0, 5], // OffsetCommit
          9: [0, 4], // OffsetFetch
          10: [0, 2], // FindCoordinator
          11: [0, 5], // JoinGroup
          12: [0, 3], // Heartbeat
          13: [0, 2], // LeaveGroup
          14: [0, 3], // SyncGroup
          15: [0, 2], // DescribeGroups
          16: [0, 2], // ListGroups
          17: [0, 1], // SaslHandshake
          18: [0, 2], // ApiVersions
          19: [0, 3], // CreateTopics
          20: [0, 1], // DeleteTopics
          22: [0, 1], // InitProducerId
          32: [0, 2], // DescribeConfigs
          36: [0, 1], // SaslAuthenticate
          37: [0, 1], // CreatePartitions
          42: [0, 1] // DeleteGroups
        })
        expect(r.int32()).toBe(0) // throttle time (v1+)
      }))

    it.scoped("Metadata advertises the bound host and port", () =>
      Effect.gen(function*() {
        const { host, port } = yield* KafkaBroker.KafkaBroker
        const conn = yield* connection(`${host}:${port}`)
        const r = reader(yield* request(conn, 3, 1, body(i32(0))))
        expect(r.int32()).toBe(1)
        expect([r.int32(), r.string(), r.int32()]).toEqual([0, host, port])
      }))

    it.scoped("an idempotent producer's retried batch gets its original offset; a sequence gap is error 45", () =>
      Effect.gen(function*() {
        const conn = yield* connection(yield* broker)
        // InitProducerId v1: no transactional id, timeout
        const init = reader(yield* request(conn, 22, 1, body(i16(-1), i32(60_000))))
        init.int32()
        expect(init.int16()).toBe(0)
        const producerId = init.int64()
        const producerEpoch = init.int16()
        expect(producerId >= 0n).toBe(true)
        const send = (baseSequence: number, value: string) =>
          Effect.map(
            request(
              conn,
              0,
              3,
              produceV3("idempotent", recordBatch(Buffer.from(value), { producerId, producerEpoch, baseSequence }))
            ),
            produceResult
          )
        // another producer's plain batch first, so the offsets are not the sequences
        yield* request(conn, 0, 3, produceV3("idempotent", recordBatch(Buffer.from("plain"))))
        expect(yield* send(0, "a")).toEqual({ error: 0, baseOffset: 1 })
        expect(yield* send(1, "b")).toEqual({ error: 0, baseOffset: 2 })
        expect(yield* send(0, "a")).toEqual({ error: 0, baseOffset: 1 })
        expect(yield* send(1, "b")).toEqual({ error: 0, baseOffset: 2 })
        expect((yield* send(5, "gap")).error).toBe(45)
        expect(yield* send(2, "c")).toEqual({ error: 0, baseOffset: 3 })
        // ListOffsets v1 latest: four records, no duplicates
        const offsets = reader(
          yield* request(conn, 2, 1, body(i32(-1), i32(1), str("idempotent"), i32(1), i32(0), i64(-1)))
        )
        offsets.int32()
        offsets.string()
        offsets.int32()
        expect([offsets.int32(), offsets.int16(), offsets.int64(), offsets.int64()]).toEqual([0, 0, -1n, 4n])
      }))

    it.scoped("a group rebalances when a member joins and when a member's session expires", () =>
      Effect.gen(function*() {
        const address = yield* broker
        const a = yield* connection(address)
        const b = yield* connection(address)
        const admin = yield* connection(address)
        const group = "expiry-g"

        const first = yield* joinGroup(a, group, "", 30_000)
        expect(first).toMatchObject({ error: 0, generation: 1, protocol: "range" })
        expect(first.leader).toBe(first.memberId)
        const memberA = first.memberId
        expect(yield* syncGroup(a, group, 1, memberA, [memberA])).toEqual({ error: 0, assignment: `for ${memberA}` })
        expect(yield* describeGroup(admin, group)).toEqual({ error: 0, state: "Stable", members: [memberA] })

        // B joins with a short session: its JoinGroup waits until A rejoins; A learns of it from its heartbeat
        const bJoin = yield* Effect.fork(joinGroup(b, group, "", 500))
        yield* heartbeat(a, group, 1, memberA).pipe(
          Effect.repeat({ until: (error) => error === 27, schedule: Schedule.spaced("20 millis") })
        )
        expect((yield* describeGroup(admin, group)).state).toBe("PreparingRebalance")
        const aSecond = yield* joinGroup(a, group, memberA, 30_000)
        const bSecond = yield* bJoin.await.pipe(Effect.flatten)
        expect([aSecond.generation, bSecond.generation]).toEqual([2, 2])
        expect(aSecond.members.map((m) => m.memberId).sort()).toEqual([memberA, bSecond.memberId].sort())
        expect(bSecond.members).toEqual([]) // only the leader gets the member list
        const memberB = bSecond.memberId
        expect((yield* describeGroup(admin, group)).state).toBe("CompletingRebalance")
        const bSync = yield* Effect.fork(syncGroup(b, group, 2, memberB))
        expect(yield* syncGroup(a, group, 2, memberA, [memberA, memberB])).toEqual({
          error: 0,
          assignment: `for ${memberA}`
        })
        expect(yield* bSync.await.pipe(Effect.flatten)).toEqual({ error: 0, assignment: `for ${memberB}` })

        // stale generations are refused
        expect(yield* heartbeat(a, group, 1, memberA)).toBe(22)
        expect((yield* syncGroup(a, group, 1, memberA)).error).toBe(22)

        // B stops heartbeating: its session expires, A is told to rejoin and becomes the only member
        yield* heartbeat(a, group, 2, memberA).pipe(
          Effect.repeat({ until: (error) => error === 27, schedule: Schedule.spaced("50 millis") })
        )
        const third = yield* joinGroup(a, group, memberA, 30_000)
        expect(third).toMatchObject({ error: 0, generation: 3, leader: memberA })
        expect(third.members.map((m) => m.memberId)).toEqual([memberA])
        expect(yield* heartbeat(b, group, 2, memberB)).toBe(25) // UNKNOWN_MEMBER_ID
        expect((yield* syncGroup(a, group, 3, memberA, [memberA])).error).toBe(0)
        expect(yield* describeGroup(admin, group)).toEqual({ error: 0, state: "Stable", members: [memberA] })

        // LeaveGroup v0 empties the group
        const leave = yield* request(a, 13, 0, body(str(group), str(memberA)))
        expect(leave.readInt16BE(0)).toBe(0)
        expect(yield* describeGroup(admin, group)).toEqual({ error: 0, state: "Empty", members: [] })
      }))

    it.scoped("a long-polling fetch of an unknown topic is answered at once with error 3", () =>
      Effect.gen(function*() {
        const conn = yield* connection(yield* broker)
        // Fetch v4 with a 10-minute max wait: the test would time out if the broker waited for it
        const r = reader(
          yield* request(
            conn,
            1,
            4,
            body(
              i32(-1),
              i32(600_000),
              i32(1),
              i32(1 << 20),
              i8(0),
              i32(1),
              str("no-such-topic"),
              i32(1),
              i32(0),
              i64(0),
              i32(1 << 20)
            )
          )
        )
        r.int32()
        r.int32()
        expect(r.string()).toBe("no-such-topic")
        r.int32()
        expect([r.int32(), r.int16()]).toEqual([0, 3])
        // and producing to an invalid topic name is INVALID_TOPIC_EXCEPTION
        const produced = yield* request(conn, 0, 3, produceV3("bad/name", recordBatch(Buffer.from("x"))))
        expect(produceResult(produced).error).toBe(17)
      }))

    it.scoped("a fetch with min bytes waits for a produce and returns it", () =>
      Effect.gen(function*() {
        const address = yield* broker
        const consumer = yield* connection(address)
        const producer = yield* connection(address)
        yield* request(producer, 0, 3, produceV3("long-poll", recordBatch(Buffer.from("first"))))
        // Fetch v4 from offset 1 (the end), min bytes 1, max wait 30 s
        const fetch = yield* Effect.fork(request(
          consumer,
          1,
          4,
          body(
            i32(-1),
            i32(30_000),
            i32(1),
            i32(1 << 20),
            i8(0),
            i32(1),
            str("long-poll"),
            i32(1),
            i32(0),
            i64(1),
            i32(1 << 20)
          )
        ))
        yield* request(producer, 0, 3, produceV3("long-poll", recordBatch(Buffer.from("second"))))
        const r = reader(yield* fetch.await.pipe(Effect.flatten))
        r.int32() // throttle
        r.int32()
        r.string()
        r.int32()
        expect(r.int32()).toBe(0) // partition
        expect(r.int16()).toBe(0) // error
        expect(r.int64()).toBe(2n) // high watermark
        r.int64() // last stable offset
        r.int32() // aborted transactions
        const records = r.bytes()
        expect(records.readBigInt64BE(0)).toBe(1n) // the second batch, with its offset assigned
        expect(records.includes(Buffer.from("second"))).toBe(true)
      }))
  })
})
