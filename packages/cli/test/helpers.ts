// Shared by the CLI tests: the built `deimos` bin run as a subprocess, and the pieces the commands talk to.
import { Cli } from "@deimos/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Console from "effect/Console"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
export const bin = path.join(root, "bin", "deimos.js")

if (!fs.existsSync(path.join(root, "dist", "bin.js"))) {
  throw new Error("packages/cli/dist is missing: build first (npx tsc -b)")
}

export const databaseUrl = "postgres://postgres@127.0.0.1:5432/test"

/** A schema name of this file's own (files run in parallel on one database). */
export const schemaFor = (file: string) => `cli_${file}_${process.pid}_${Math.floor(Math.random() * 1e6)}`.toLowerCase()

export interface Running {
  readonly pid: number
  readonly stdout: () => string
  readonly stderr: () => string
  /** The exit code (a signal counts as 128 + its number). */
  readonly exited: Effect.Effect<number>
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void>
}

/** How the bin is spawned: node flags before it (e.g. `--import tsx`), the working directory. */
export interface SpawnOptions {
  readonly node?: ReadonlyArray<string>
  readonly cwd?: string
}

/** `--import tsx` in the package's directory: how a TypeScript fixture module is run. */
export const tsx: SpawnOptions = { node: ["--import", "tsx"], cwd: root }

/**
 * `deimos <args>` as a child process, with `env` over a copy of this process's environment minus the variables the
 * commands read (so the machine's own settings do not leak in); killed when the scope closes if still running.
 */
export const start = (args: ReadonlyArray<string>, env: Record<string, string> = {}, options: SpawnOptions = {}) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const base = Object.fromEntries(
        Object.entries(process.env).filter(([k]) =>
          !/^(KAFKA_|DATABASE_|OUTBOX_|SCHEMA_REGISTRY_|DEIMOS_|CHECKPOINT_|CONSOLE_)/.test(k)
        )
      )
      const child = spawn(process.execPath, [...(options.node ?? []), bin, ...args], {
        cwd: options.cwd,
        env: { ...base, DEIMOS_PROGRESS: "plain", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      let err = ""
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk))
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk))
      const exited = yield* Deferred.make<number>()
      child.on("exit", (code, signal) => {
        Deferred.unsafeDone(exited, Effect.succeed(code ?? (signal === null ? 1 : 128 + os(signal))))
      })
      return {
        child,
        running: {
          pid: child.pid ?? -1,
          stdout: () => out,
          stderr: () => err,
          exited: Deferred.await(exited),
          signal: (s: NodeJS.Signals) => Effect.sync(() => void child.kill(s))
        } satisfies Running
      }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  ).pipe(Effect.map(({ running }) => running))

const os = (signal: NodeJS.Signals) => signal === "SIGTERM" ? 15 : signal === "SIGINT" ? 2 : 9

/** Runs `deimos <args>` to its end (within 60 s): exit code and output. */
export const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}, options: SpawnOptions = {}) =>
  Effect.scoped(Effect.gen(function*() {
    const p = yield* start(args, env, options)
    const code = yield* p.exited.pipe(
      Effect.timeoutFail({
        duration: "60 seconds",
        onTimeout: () => new Error(`deimos ${args.join(" ")} did not end within 60 s:\n${p.stdout()}\n${p.stderr()}`)
      })
    )
    return { code, stdout: p.stdout(), stderr: p.stderr() }
  }))

/** Waits until `check` holds (every 50 ms, at most 60 s), then fails saying what did not happen. */
export const waitFor = (what: string, check: () => boolean, running?: Running) =>
  Effect.suspend(() => check() ? Effect.void : Effect.fail(new Error(what))).pipe(
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("60 seconds"))),
    Effect.mapError((e) =>
      new Error(
        `${e.message} within 60 s${
          running === undefined ? "" : `\nstdout:\n${running.stdout()}\nstderr:\n${running.stderr()}`
        }`
      )
    )
  )

/** The JSON lines a command wrote. */
export const jsonLines = (text: string): ReadonlyArray<Record<string, unknown>> =>
  text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as Record<string, unknown>)

/** Repeats `sample` (every 100 ms, at most 60 s) until `until` holds of its value, which it answers. */
export const eventually = <A, E, R>(what: string, sample: Effect.Effect<A, E, R>, until: (a: A) => boolean) =>
  sample.pipe(
    Effect.filterOrFail(until, () => new Error(`${what} did not happen within 60 s`)),
    Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("60 seconds")))
  )

/**
 * Runs `deimos <args>` in this process (the command's effect, not a subprocess): exit code and what it wrote
 * through `Console`. Configuration comes from `env` only (not this process's environment).
 */
export const runHere = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const out: Array<string> = []
    const err: Array<string> = []
    const capture = (into: Array<string>) => (...parts: ReadonlyArray<unknown>) =>
      Effect.sync(() => void into.push(parts.map(String).join(" ")))
    const code = yield* Console.consoleWith((console) =>
      Cli.run(["node", "deimos", ...args]).pipe(
        Effect.withConsole({ ...console, log: capture(out), error: capture(err) })
      )
    ).pipe(
      Effect.provide(NodeContext.layer),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))
    )
    return { code, stdout: out.map((l) => `${l}\n`).join(""), stderr: err.join("\n") }
  })
