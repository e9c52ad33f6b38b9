// What the benchmarks share: the median of rounds, and the dev broker in a process of its own.
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** The median (the mean of the middle two for an even count). */
export const median = (xs: ReadonlyArray<number>): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted.length % 2 === 1
    ? sorted[(sorted.length - 1) / 2]
    : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2
}

/**
 * The dev broker and registry in a process of their own (so that their CPU is not the benchmark's), on free ports;
 * answers their addresses once both listen, and stops them when the scope closes.
 */
export const startBroker = (partitions: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly child: ChildProcess; readonly broker: string; readonly registry: string }, Error>(
      (resume) => {
        const child = spawn(process.execPath, [
          path.join(root, "packages/broker/bin/deimos-broker.js"),
          "--port",
          "0",
          "--registry-port",
          "0",
          "--partitions",
          String(partitions),
          "--max-message-bytes",
          String(16 * 1024 * 1024)
        ], { stdio: ["ignore", "pipe", "inherit"] })
        let out = ""
        child.stdout!.on("data", (chunk: Buffer) => {
          out += chunk.toString()
          const broker = /Kafka broker:\s+(\S+)/.exec(out)
          const registry = /Schema Registry:\s+(\S+)/.exec(out)
          if (broker !== null && registry !== null) {
            resume(Effect.succeed({ child, broker: broker[1], registry: registry[1] }))
          }
        })
        child.once("exit", (code) => resume(Effect.fail(new Error(`the broker exited (${code})\n${out}`))))
      }
    ),
    ({ child }) => Effect.sync(() => child.kill("SIGTERM"))
  )
