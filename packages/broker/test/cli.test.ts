import { DevCertificates } from "@deimos/broker"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { body, connect, i32, reader } from "./rawClient.js"

const packageDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..")

/** `deimos-broker` from its TypeScript source (the bin runs the same module from `dist`). */
const startCli = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { cwd: packageDir })
      let output = ""
      child.stdout.on("data", (d: Buffer) => output += d.toString())
      child.stderr.on("data", (d: Buffer) => output += d.toString())
      return { child, output: () => output }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
  )

/** Waits until the output matches, or fails when the process exits first. */
const waitFor = (cli: { readonly child: ChildProcess; readonly output: () => string }, pattern: RegExp) =>
  Effect.async<RegExpMatchArray, Error>((resume) => {
    const check = () => {
      const match = cli.output().match(pattern)
      if (match !== null) resume(Effect.succeed(match))
    }
    const onExit = () => resume(Effect.fail(new Error(`deimos-broker exited:\n${cli.output()}`)))
    cli.child.stdout?.on("data", check)
    cli.child.once("exit", onExit)
    check()
    return Effect.sync(() => {
      cli.child.stdout?.off("data", check)
      cli.child.off("exit", onExit)
    })
  })

const exitCode = (child: ChildProcess) =>
  Effect.async<number | null>((resume) => {
    if (child.exitCode !== null) return resume(Effect.succeed(child.exitCode))
    child.once("exit", (code) => resume(Effect.succeed(code)))
  })

describe("deimos-broker CLI", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it.scoped(`prints both addresses, serves Kafka clients and stops cleanly on ${signal}`, () =>
      Effect.gen(function*() {
        const cli = yield* startCli(["--port", "0", "--registry-port", "0", "--partitions", "2"])
        const [, broker] = yield* waitFor(cli, /Kafka broker: +(\S+)/)
        const [, registry] = yield* waitFor(cli, /Schema Registry: +(\S+)/)
        expect(broker).toMatch(/^127\.0\.0\.1:\d+$/)
        expect(registry).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
        // the broker answers Metadata v1 with the address it printed
        const response = yield* Effect.promise(async () => {
          const conn = await connect(broker)
          const r = await conn.request(3, 1, body(i32(0)))
          conn.end()
          return r
        })
        const r = reader(response)
        r.int32() // one broker
        r.int32() // node id
        const host = r.string()
        expect(`${host}:${r.int32()}`).toBe(broker)

        cli.child.kill(signal)
        expect(yield* exitCode(cli.child)).toBe(0)
        expect(cli.output()).toContain("Stopped.")
      }))
  }

  it.scoped("rejects a bad option with usage and exit code 2", () =>
    Effect.gen(function*() {
      const cli = yield* startCli(["--port", "nope"])
      expect(yield* exitCode(cli.child)).toBe(2)
      expect(cli.output()).toContain("Usage: deimos-broker")
    }))

  it.scopedLive("--tls-cert/--tls-key/--tls-ca with --sasl and --user: a SASL_SSL listener with mutual TLS", () =>
    Effect.gen(function*() {
      const certs = yield* DevCertificates.make()
      const cli = yield* startCli([
        "--port",
        "0",
        "--registry-port",
        "0",
        "--tls-cert",
        path.join(certs.dir, "server.pem"),
        "--tls-key",
        path.join(certs.dir, "server.key"),
        "--tls-ca",
        path.join(certs.dir, "ca.pem"),
        "--sasl",
        "scram-sha-512",
        "--sasl",
        "plain",
        "--user",
        "alice:secret",
        "--user",
        "bob:pw",
        "--registry-user",
        "reg:secret",
        "--registry-tls"
      ])
      const [, security] = yield* waitFor(cli, /Kafka broker: +\S+ \((.+)\)/)
      expect(security).toBe("mutual TLS, SASL scram-sha-512, plain")
      const [, registry] = yield* waitFor(cli, /Schema Registry: +(\S+)/)
      expect(registry).toMatch(/^https:/)
      cli.child.kill("SIGTERM")
      expect(yield* exitCode(cli.child)).toBe(0)
    }))

  for (
    const [args, message] of [
      [["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "cannot read /nonexistent.pem"],
      [["--tls-cert", "package.json"], "--tls-cert and --tls-key go together"],
      [["--sasl", "kerberos"], "--sasl must be one of"],
      [["--sasl", "plain", "--user", "nopassword"], "--user must be NAME:PASSWORD"],
      [["--user", "a:b"], "--user needs --sasl"],
      [["--registry-tls"], "--registry-tls needs --tls-cert"]
    ] as const
  ) {
    it.scoped(`rejects ${args.join(" ")} with exit code 2`, () =>
      Effect.gen(function*() {
        const cli = yield* startCli(["--port", "0", "--registry-port", "0", ...args])
        expect(yield* exitCode(cli.child)).toBe(2)
        expect(cli.output()).toContain(message)
      }))
  }
})
