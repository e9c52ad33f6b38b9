import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { run, runHere } from "./helpers.js"

describe("deimos", () => {
  it.live("--help lists every command", () =>
    Effect.gen(function*() {
      const { code, stdout } = yield* run(["--help"])
      expect(code).toBe(0)
      for (
        const command of [
          "broker",
          "migrate",
          "relay",
          "poll",
          "consume",
          "events-api",
          "console",
          "tail",
          "offsets",
          "codegen"
        ]
      ) {
        expect(stdout).toContain(`- ${command}`)
      }
    }))

  it.live("each command's --help lists its flags and the variables they override", () =>
    Effect.gen(function*() {
      const relay = yield* runHere(["relay", "--help"])
      expect(relay.code).toBe(0)
      expect(relay.stdout).toContain("--database-url")
      expect(relay.stdout).toContain("Overrides DATABASE_URL")
      expect(relay.stdout).toContain("Overrides KAFKA_BROKERS")
      expect(relay.stdout).toContain("OUTBOX_")
      const tail = yield* runHere(["tail", "--help"])
      expect(tail.stdout).toContain("--follow")
      expect(tail.stdout).toContain("SCHEMA_REGISTRY_URL")
      const consume = yield* runHere(["consume", "--help"])
      expect(consume.stdout).toContain("--lag-interval")
      expect(consume.stdout).toContain("Overrides DEIMOS_LAG_INTERVAL")
      expect(consume.stdout).toContain("node --import tsx")
      const poll = yield* runHere(["poll", "--help"])
      expect(poll.stdout).toContain("Poller.Options")
      expect(poll.stdout).toContain("Overrides DATABASE_URL")
      const api = yield* runHere(["events-api", "--help"])
      expect(api.stdout).toContain("--token-env")
      expect(api.stdout).toContain("Overrides CHECKPOINT_API_PORT")
      const web = yield* runHere(["console", "--help"])
      expect(web.stdout).toContain("--lag")
      expect(web.stdout).toContain("CONSOLE_LAG")
      const migrate = yield* runHere(["migrate", "--help"])
      expect(migrate.stdout).toContain("CHECKPOINT_SCHEMA")
    }))

  it.live("an unknown flag exits 2 with the parser's message", () =>
    Effect.gen(function*() {
      const { code, stderr } = yield* run(["offsets", "g", "t", "--bogus"])
      expect(code).toBe(2)
      expect(stderr).toContain("--bogus")
    }))

  it.live("missing configuration exits 2 naming the variable and the flag", () =>
    Effect.gen(function*() {
      const relay = yield* run(["relay"])
      expect(relay.code).toBe(2)
      expect(relay.stderr).toContain("DATABASE_URL is not set: set DATABASE_URL or pass --database-url")
      const tail = yield* runHere(["tail", "orders"])
      expect(tail.code).toBe(2)
      expect(tail.stderr).toContain("KAFKA_BROKERS is not set: set KAFKA_BROKERS or pass --brokers")
      const migrate = yield* runHere(["migrate"])
      expect(migrate.code).toBe(2)
      expect(migrate.stderr).toContain("pass --database-url")
    }))

  it.live("an invalid variable exits 2 saying why; a bad value of a flag exits 2", () =>
    Effect.gen(function*() {
      const relay = yield* runHere(["relay", "--database-url", "postgres://x", "--brokers", "b:1"], {
        OUTBOX_CONCURRENCY: "0"
      })
      expect(relay.code).toBe(2)
      expect(relay.stderr).toContain("OUTBOX_CONCURRENCY is invalid (must be at least 1)")
      const from = yield* runHere(["tail", "orders", "--from", "middle", "--brokers", "127.0.0.1:1"])
      expect(from.code).toBe(2)
      expect(from.stderr).toContain("--from wants beginning, end or an offset")
      const limit = yield* runHere(["tail", "orders", "--limit", "many"])
      expect(limit.code).toBe(2)
    }))

  it.live("codegen writes the modules; a bad --key exits 2", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "deimos-codegen-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const schemas = path.join(dir, "schemas")
      fs.mkdirSync(schemas)
      fs.writeFileSync(
        path.join(schemas, "Widget.avsc"),
        JSON.stringify({
          type: "record",
          name: "Widget",
          namespace: "com.example",
          fields: [{ name: "id", type: "string" }, { name: "size", type: "int" }]
        })
      )
      const out = path.join(dir, "generated")
      const ok = yield* run(["codegen", "--schemas", schemas, "--out", out, "--key-field", "id"])
      expect(ok.code).toBe(0)
      expect(ok.stdout).toContain(`in ${out}`)
      const generated = fs.readdirSync(out)
      expect(generated).toContain("index.ts")
      const module = fs.readFileSync(path.join(out, generated.find((f) => f !== "index.ts")!), "utf8")
      expect(module).toContain("WidgetSchema")
      const bad = yield* runHere(["codegen", "--schemas", schemas, "--out", out, "--key", "Widget"])
      expect(bad.code).toBe(2)
      expect(bad.stderr).toContain("--key wants RECORD=VALUE")
      const missing = yield* runHere(["codegen", "--schemas", path.join(dir, "nope"), "--out", out])
      expect(missing.code).toBe(2)
    }).pipe(Effect.scoped))
})
