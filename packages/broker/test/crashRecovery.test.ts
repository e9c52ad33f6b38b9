import * as KafkaBroker from "@deimos/broker/KafkaBroker"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import {
  body,
  connect,
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

const connection = (broker: string) =>
  Effect.acquireRelease(Effect.promise(() => connect(broker)), (conn) => Effect.sync(() => conn.end()))

const produce = (conn: RawConnection, topic: string, value: string) =>
  Effect.map(
    Effect.promise(() => conn.request(0, 3, produceV3(topic, recordBatch(Buffer.from(value))))),
    produceResult
  )

/** Reads a zigzag varint at `at`; answers it and the offset after it. */
const varint = (buf: Buffer, at: number): readonly [number, number] => {
  let result = 0
  let shift = 0
  for (;;) {
    const b = buf[at++]
    result |= (b & 0x7f) << shift
    if ((b & 0x80) === 0) return [(result >>> 1) ^ -(result & 1), at]
    shift += 7
  }
}

/** Each batch of a records blob as `offset:value` of its one record (the batches `recordBatch` writes). */
const recordsOf = (records: Buffer): ReadonlyArray<string> => {
  const out: Array<string> = []
  for (let at = 0; at < records.length;) {
    const size = 12 + records.readInt32BE(at + 8)
    let p = at + 61
    ;[, p] = varint(records, p) // record length
    p += 1 // attributes
    ;[, p] = varint(records, p) // timestamp delta
    const [offsetDelta, afterOffset] = varint(records, p)
    const [, afterKey] = varint(records, afterOffset) // key length -1
    const [valueLength, valueAt] = varint(records, afterKey)
    const offset = Number(records.readBigInt64BE(at)) + offsetDelta
    out.push(`${offset}:${records.toString("utf8", valueAt, valueAt + valueLength)}`)
    at += size
  }
  return out
}

/** Fetch v4 of partition 0 of `topic` from offset 0: its records, as `recordsOf` writes them. */
const readAll = (conn: RawConnection, topic: string) =>
  Effect.map(
    Effect.promise(() =>
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
          str(topic),
          i32(1),
          i32(0),
          i64(0),
          i32(1 << 20)
        )
      )
    ),
    (response) => {
      const r = reader(response)
      r.int32()
      r.int32()
      r.string()
      r.int32()
      r.int32()
      expect(r.int16()).toBe(0)
      r.int64()
      r.int64()
      r.int32()
      return recordsOf(Buffer.from(r.bytes()))
    }
  )

/** Starts a broker on `dataDir`, runs `f` with a connection to it, and stops it. */
const withBroker = <A>(dataDir: string, f: (conn: RawConnection) => Effect.Effect<A>) =>
  Effect.scoped(Effect.gen(function*() {
    const broker = yield* KafkaBroker.make({ port: 0, dataDir, partitions: 1 })
    return yield* f(yield* connection(broker.broker))
  }))

/** Lengths of the batches one after the other in a log file. */
const batchSizes = (log: Buffer): ReadonlyArray<number> => {
  const sizes: Array<number> = []
  for (let at = 0; at < log.length; at += sizes[sizes.length - 1]) sizes.push(12 + log.readInt32BE(at + 8))
  return sizes
}

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "deimos-broker-crash-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

describe("dev broker crash recovery", () => {
  it.scoped("a last batch cut at any byte is dropped and cut off: earlier records stay, new ones are readable", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      yield* withBroker(
        dataDir,
        (conn) =>
          Effect.forEach(
            ["one", "two", "three"],
            (value, i) =>
              Effect.map(produce(conn, "torn", value), (result) => expect(result).toEqual({ error: 0, baseOffset: i }))
          )
      )
      const file = path.join(dataDir, "logs", "torn-0.log")
      const full = fs.readFileSync(file)
      const [first, second, last] = batchSizes(full)
      expect(first + second + last).toBe(full.length)
      const lastStart = first + second
      // every length from "the last batch missing" to "one byte short of it"
      for (let cut = lastStart; cut < full.length; cut++) {
        fs.writeFileSync(file, full.subarray(0, cut))
        const appended = yield* withBroker(dataDir, (conn) => produce(conn, "torn", "after"))
        expect({ cut, ...appended }).toEqual({ cut, error: 0, baseOffset: 2 })
        const records = yield* withBroker(dataDir, (conn) => readAll(conn, "torn"))
        expect({ cut, records }).toEqual({ cut, records: ["0:one", "1:two", "2:after"] })
        expect(fs.statSync(file).size).toBe(lastStart + last + "after".length - "three".length)
      }
    }))

  it.scoped("a batch that fails its CRC ends the log there, with a warning; appends continue after the last good one", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      yield* withBroker(
        dataDir,
        (conn) => Effect.forEach(["one", "two", "three"], (value) => produce(conn, "flipped", value))
      )
      const file = path.join(dataDir, "logs", "flipped-0.log")
      const log = fs.readFileSync(file)
      const [first, second] = batchSizes(log)
      log[first + second - 2] ^= 0x01 // in the value of the second batch's record
      fs.writeFileSync(file, log)

      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(String(message))
      })
      const appended = yield* withBroker(dataDir, (conn) => produce(conn, "flipped", "after")).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      expect(appended).toEqual({ error: 0, baseOffset: 1 })
      expect(warnings).toEqual([
        `${file}: the batch at byte ${first} fails its CRC-32C check; the log is cut there (${
          log.length - first
        } bytes dropped) and continues at offset 1`
      ])
      expect(yield* withBroker(dataDir, (conn) => readAll(conn, "flipped"))).toEqual(["0:one", "1:after"])
    }))
})
