import { DevCluster } from "@deimos/broker"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile, spawn } from "node:child_process"
import {
  body,
  Compression,
  connect,
  i32,
  i64,
  i8,
  produceResult,
  produceV3,
  reader,
  recordBatchOf,
  str
} from "./rawClient.js"

/** Runs kcat with `input` on stdin; resolves with stdout. */
const kcat = (args: ReadonlyArray<string>, input?: string, timeoutMs = 20_000) =>
  Effect.async<{ readonly stdout: string; readonly stderr: string }, Error>((resume) => {
    const child = execFile("kcat", [...args], { timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error !== null) resume(Effect.fail(new Error(`kcat ${args.join(" ")} failed: ${error.message}\n${stderr}`)))
      else resume(Effect.succeed({ stdout, stderr }))
    })
    if (input !== undefined) child.stdin?.end(input)
    return Effect.sync(() => child.kill())
  })

const withBroker = <A, E>(f: (broker: string) => Effect.Effect<A, E>) =>
  Effect.flatMap(DevCluster.DevCluster, (cluster) => f(cluster.brokers[0]))

describe("dev broker with kcat (librdkafka)", () => {
  it.layer(DevCluster.layer({ port: 0, partitions: 2 }), { timeout: 60_000 })((it) => {
    it.effect("-L lists the broker and topics", () =>
      withBroker((broker) =>
        Effect.gen(function*() {
          yield* kcat(["-b", broker, "-P", "-t", "listed"], "x\n")
          const { stdout } = yield* kcat(["-b", broker, "-L"])
          expect(stdout).toContain(`broker 0 at ${broker}`)
          expect(stdout).toMatch(/topic "listed" with 2 partitions/)
        })
      ))

    it.effect("-P then -C -e round-trips keys and values", () =>
      withBroker((broker) =>
        Effect.gen(function*() {
          yield* kcat(["-b", broker, "-P", "-t", "plain", "-K", ":"], "k1:v1\nk2:v2\nk3:v3\n")
          const { stdout } = yield* kcat(["-b", broker, "-C", "-t", "plain", "-e", "-q", "-f", "%k=%s\\n"])
          expect(stdout.trim().split("\n").sort()).toEqual(["k1=v1", "k2=v2", "k3=v3"])
        })
      ))

    it.effect("snappy, lz4, zstd and gzip batches from kcat are stored compressed and read back by kcat", () =>
      withBroker((broker) =>
        Effect.gen(function*() {
          // librdkafka sends a batch uncompressed when compressing does not make it smaller: values that compress
          const padding = "x".repeat(300)
          const codecs = ["snappy", "lz4", "zstd", "gzip"]
          for (const codec of codecs) {
            // idempotent: a send librdkafka retries (a slow answer on a loaded machine) is not stored twice
            yield* kcat(
              ["-b", broker, "-P", "-t", "compressed", "-p", "0", "-z", codec, "-X", "enable.idempotence=true"],
              `${codec}-1${padding}\n${codec}-2${padding}\n`
            )
          }
          // Fetch v11 of partition 0: the codec in each stored batch's attributes
          const records = yield* Effect.promise(async () => {
            const conn = await connect(broker)
            const response = await conn.request(
              1,
              11,
              body(
                ...[i32(-1), i32(0), i32(0), i32(1 << 20), i8(0)], // replica, max wait, min and max bytes, isolation
                ...[i32(0), i32(-1)], // no fetch session
                ...[i32(1), str("compressed"), i32(1)], // one topic, one partition:
                ...[i32(0), i32(-1), i64(0), i64(0), i32(1 << 20)], // 0, leader epoch, offset 0, log start, max bytes
                ...[i32(0), str("")] // no forgotten topics, rack
              )
            )
            conn.end()
            const r = reader(response)
            r.int32() // throttle
            expect(r.int16()).toBe(0)
            r.int32() // session
            r.int32() // one topic
            r.string()
            r.int32() // one partition
            r.int32() // its index
            expect(r.int16()).toBe(0)
            for (let i = 0; i < 3; i++) r.int64() // high watermark, last stable offset, log start offset
            r.int32() // aborted transactions
            r.int32() // preferred read replica
            return r.bytes()
          })
          const stored: Array<number> = []
          for (let at = 0; at < records.length; at += 12 + records.readInt32BE(at + 8)) {
            stored.push(records.readInt16BE(at + 21) & 0x07)
          }
          expect(stored).toEqual([Compression.snappy, Compression.lz4, Compression.zstd, Compression.gzip])
          const { stdout } = yield* kcat(["-b", broker, "-C", "-t", "compressed", "-p", "0", "-e", "-q", "-f", "%s\\n"])
          expect(stdout.trim().split("\n")).toEqual(
            codecs.flatMap((codec) => [`${codec}-1${padding}`, `${codec}-2${padding}`])
          )
        })
      ))

    it.effect("-o s@<timestamp> starts at the first record at or after it, inside plain and gzip batches", () =>
      withBroker((broker) =>
        Effect.gen(function*() {
          const t0 = Date.parse("2026-01-01T00:00:00Z")
          yield* Effect.promise(async () => {
            const conn = await connect(broker)
            const batches = [
              recordBatchOf([0, 1000, 2000, 3000].map((d) => ({ value: `plain+${d}`, timestampDelta: d })), {
                firstTimestamp: t0
              }),
              recordBatchOf([10_000, 11_000, 12_000].map((d) => ({ value: `gzip+${d}`, timestampDelta: d - 10_000 })), {
                firstTimestamp: t0 + 10_000,
                compression: Compression.gzip
              })
            ]
            for (const batch of batches) {
              expect(produceResult(await conn.request(0, 3, produceV3("by-time", batch))).error).toBe(0)
            }
            conn.end()
          })
          const from = (timestamp: number) =>
            Effect.map(
              kcat([
                "-b",
                broker,
                "-C",
                "-t",
                "by-time",
                "-p",
                "0",
                "-o",
                `s@${timestamp}`,
                "-e",
                "-q",
                "-f",
                "%o %T %s\\n"
              ]),
              ({ stdout }) => stdout.trim().split("\n")
            )
          expect(yield* from(t0 + 1500)).toEqual([
            `2 ${t0 + 2000} plain+2000`,
            `3 ${t0 + 3000} plain+3000`,
            `4 ${t0 + 10_000} gzip+10000`,
            `5 ${t0 + 11_000} gzip+11000`,
            `6 ${t0 + 12_000} gzip+12000`
          ])
          expect(yield* from(t0 + 11_500)).toEqual([`6 ${t0 + 12_000} gzip+12000`])
          // -Q asks ListOffsets by time: the offset found, -1 after every record
          const query = (timestamp: number) =>
            Effect.map(kcat(["-b", broker, "-Q", "-t", `by-time:0:${timestamp}`]), ({ stdout }) => stdout.trim())
          expect(yield* query(t0 + 1500)).toBe("by-time [0] offset 2")
          expect(yield* query(t0 + 12_001)).toBe("by-time [0] offset -1")
        })
      ))

    it.effect("-G runs a balanced consumer group that reads every message", () =>
      withBroker((broker) =>
        Effect.gen(function*() {
          yield* kcat(["-b", broker, "-P", "-t", "balanced", "-K", ":"], "a:1\nb:2\nc:3\nd:4\n")
          const lines = yield* Effect.async<ReadonlyArray<string>, Error>((resume) => {
            const child = spawn("kcat", [
              "-b",
              broker,
              "-G",
              "kcat-group",
              "-u",
              "-f",
              "%s\\n",
              "-q",
              "-X",
              "auto.offset.reset=earliest",
              "balanced"
            ])
            const out: Array<string> = []
            child.stdout.on("data", (d: Buffer) => {
              out.push(...d.toString().trim().split("\n").filter((l) => l !== ""))
              if (out.length >= 4) {
                child.kill("SIGINT")
                resume(Effect.succeed(out))
              }
            })
            const timer = setTimeout(() => {
              child.kill("SIGKILL")
              resume(Effect.fail(new Error(`kcat -G read only ${out.length} messages`)))
            }, 30_000)
            child.on("exit", () => clearTimeout(timer))
            return Effect.sync(() => child.kill("SIGKILL"))
          })
          expect([...lines].sort()).toEqual(["1", "2", "3", "4"])
        })
      ))
  })
})
