import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { body, connect, i32, i64, i8, produceV3, type RawConnection, reader, recordBatch, str } from "./rawClient.js"

const connection = (broker: string) =>
  Effect.acquireRelease(Effect.promise(() => connect(broker)), (conn) => Effect.sync(() => conn.end()))

/** Polls `value` until it satisfies `done`; fails with the last value if that takes more than 10 seconds. */
const eventually = <A>(value: () => A, done: (a: A) => boolean, what: string) =>
  Effect.sync(value).pipe(
    Effect.repeat({ until: done, schedule: Schedule.spaced("10 millis") }),
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error(`${what}: still ${value()}`) })
  )

/** Resolves when the broker closes the connection; fails if it is still open after 10 seconds. */
const closedByBroker = (conn: RawConnection) =>
  Effect.promise(() => conn.closed).pipe(
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the connection is still open") })
  )

/** An ApiVersions v0 request padded to `size` bytes of frame (the broker ignores what follows its fields). */
const paddedApiVersions = (conn: RawConnection, size: number) => {
  const prepared = conn.prepare(18, 0, Buffer.alloc(size - 4 - 18))
  // a connection the broker closes rejects its pending response: observed by the tests through `closed`
  prepared.response.catch(() => {})
  expect(prepared.frame.length).toBe(size)
  return prepared
}

const errorCodeOf = (apiVersions: Buffer) => apiVersions.readInt16BE(0)

/** Fetch v4 of partition 0 of `topic` from `offset`, waiting up to `maxWait` ms for one byte. */
const longPoll = (topic: string, offset: number, maxWait: number) =>
  body(
    i32(-1),
    i32(maxWait),
    i32(1),
    i32(1 << 20),
    i8(0),
    i32(1),
    str(topic),
    i32(1),
    i32(0),
    i64(offset),
    i32(1 << 20)
  )

describe("dev broker connection limits", () => {
  it.scopedLive("bytes of half-received requests are capped across connections: the one that passes the cap is closed", () =>
    Effect.gen(function*() {
      const mib = 1024 * 1024
      const broker = yield* KafkaBroker.make({
        port: 0,
        maxFrameBytes: mib,
        maxBufferedRequestBytes: 2.5 * mib
      })
      const [a, b, c] = yield* Effect.all([
        connection(broker.broker),
        connection(broker.broker),
        connection(broker.broker)
      ])
      const part = 900 * 1024
      const fromA = paddedApiVersions(a, mib)
      const fromB = paddedApiVersions(b, mib)
      const fromC = paddedApiVersions(c, mib)
      a.write(fromA.frame.subarray(0, part))
      b.write(fromB.frame.subarray(0, part))
      yield* eventually(
        () => broker.stats().bufferedRequestBytes,
        (n) => n === 2 * part,
        "bytes held for A and B"
      )
      c.write(fromC.frame.subarray(0, part))
      yield* closedByBroker(c)
      expect(broker.stats().bufferedRequestBytes).toBe(2 * part)
      expect([a.isClosed(), b.isClosed()]).toEqual([false, false])
      // A and B finish their requests and are answered; what they held is free again
      a.write(fromA.frame.subarray(part))
      b.write(fromB.frame.subarray(part))
      expect(errorCodeOf(yield* Effect.promise(() => fromA.response))).toBe(0)
      expect(errorCodeOf(yield* Effect.promise(() => fromB.response))).toBe(0)
      expect(broker.stats().bufferedRequestBytes).toBe(0)
      const d = yield* connection(broker.broker)
      const fromD = paddedApiVersions(d, mib)
      d.write(fromD.frame)
      expect(errorCodeOf(yield* Effect.promise(() => fromD.response))).toBe(0)
    }))

  it.scopedLive("an idle connection is closed after connectionsMaxIdle; one waiting for its answer is not", () =>
    Effect.gen(function*() {
      const broker = yield* KafkaBroker.make({ port: 0, partitions: 1, connectionsMaxIdle: "300 millis" })
      const idle = yield* connection(broker.broker)
      expect(errorCodeOf(yield* Effect.promise(() => idle.request(18, 0, Buffer.alloc(0))))).toBe(0)
      yield* closedByBroker(idle)

      // a fetch that long-polls for longer than the idle time gets its (empty) answer, then the connection idles
      const polling = yield* connection(broker.broker)
      yield* Effect.promise(() => polling.request(0, 3, produceV3("idle-poll", recordBatch(Buffer.from("x")))))
      const r = reader(yield* Effect.promise(() => polling.request(1, 4, longPoll("idle-poll", 1, 1_000))))
      r.int32()
      r.int32()
      expect(r.string()).toBe("idle-poll")
      r.int32()
      expect([r.int32(), r.int16()]).toEqual([0, 0])
      yield* closedByBroker(polling)
      yield* eventually(() => broker.stats().connections, (n) => n === 0, "connections")
    }))

  it.scopedLive("a long-polling fetch whose client goes away stops waiting at once", () =>
    Effect.gen(function*() {
      const broker = yield* KafkaBroker.make({ port: 0, partitions: 1 })
      const conn = yield* connection(broker.broker)
      yield* Effect.promise(() => conn.request(0, 3, produceV3("dropped", recordBatch(Buffer.from("x")))))
      const pending = conn.request(1, 4, longPoll("dropped", 1, 60_000))
      pending.catch(() => {})
      yield* eventually(() => broker.stats().waitingFetches, (n) => n === 1, "waiting fetches")
      conn.end()
      yield* eventually(() => broker.stats().waitingFetches, (n) => n === 0, "waiting fetches after the client left")
      yield* eventually(() => broker.stats().connections, (n) => n === 0, "connections")
    }))
})
