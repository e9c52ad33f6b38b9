// `npm run demo` as a user runs it: a subprocess on embedded defaults (PGlite, the in-process dev cluster) that ends
// with its checks passed and exit 0.
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

describe("the demo", () => {
  it("runs the whole pipeline on embedded defaults and exits 0 with every check passed", async () => {
    const env: Record<string, string | undefined> = { ...process.env, DEMO_WIDGETS: "300" }
    delete env.DATABASE_URL
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", "examples/src/demo.ts"], { cwd: root, env })
      let output = ""
      child.stdout.on("data", (d) => output += String(d))
      child.stderr.on("data", (d) => output += String(d))
      child.on("exit", (code) => resolve({ code, output }))
    })
    expect(output).toContain("Database: PGlite")
    expect(output).toMatch(/ok {3}widget_copies matches widgets \(300 rows, 0 differ\)/)
    expect(output).toContain("All checks passed.")
    expect(output).not.toContain("FAIL")
    expect(code, output).toBe(0)
  }, 180_000)
})
