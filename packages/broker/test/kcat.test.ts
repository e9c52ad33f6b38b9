import { DevCluster } from "@deimos/broker"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile, spawn } from "node:child_process"

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

    it.effect("snappy, lz4, zstd and gzip batches from kcat are read back by kcat", () =>
      withBroker((broker) =>
        Effect.gen(function*() {
          for (const codec of ["snappy", "lz4", "zstd", "gzip"]) {
            yield* kcat(["-b", broker, "-P", "-t", "compressed", "-z", codec], `${codec}-1\n${codec}-2\n`)
          }
          const { stdout } = yield* kcat(["-b", broker, "-C", "-t", "compressed", "-e", "-q", "-f", "%s\\n"])
          expect(stdout.trim().split("\n").sort()).toEqual([
            "gzip-1",
            "gzip-2",
            "lz4-1",
            "lz4-2",
            "snappy-1",
            "snappy-2",
            "zstd-1",
            "zstd-2"
          ])
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
