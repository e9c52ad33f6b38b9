// Every TypeScript block of the root README compiles, against the packages as built (`tsc -b`, which `npm ci` runs):
// each block is written out as a module of its own and the TypeScript compiler checks them all with the project's
// settings. A failure names the block by its first line in the README.
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

/** The ```ts blocks of a markdown text, with the README line each starts on. */
export const blocksOf = (markdown: string): ReadonlyArray<{ readonly line: number; readonly code: string }> => {
  const out: Array<{ line: number; code: string }> = []
  const lines = markdown.split("\n")
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i])) continue
    const start = i + 1
    let end = start
    while (end < lines.length && !lines[end].startsWith("```")) end++
    out.push({ line: start + 1, code: lines.slice(start, end).join("\n") })
    i = end
  }
  return out
}

describe("README", () => {
  it("finds the blocks of a markdown text", () => {
    expect(blocksOf("a\n```ts\nconst x = 1\n```\n```sh\nls\n```\n```typescript\nlet y\nlet z\n```\n")).toEqual([
      { line: 3, code: "const x = 1" },
      { line: 9, code: "let y\nlet z" }
    ])
  })

  it("every TypeScript block typechecks", async () => {
    const blocks = blocksOf(fs.readFileSync(path.join(root, "README.md"), "utf8"))
    expect(blocks.length).toBeGreaterThan(0)
    // inside the repository, so that the blocks' imports resolve as a user's would (node_modules/@deimos/*)
    const dir = fs.mkdtempSync(path.join(root, "examples", ".readme-check-"))
    try {
      for (const block of blocks) {
        fs.writeFileSync(path.join(dir, `readme_line_${block.line}.ts`), `${block.code}\nexport {}\n`)
      }
      fs.writeFileSync(
        path.join(dir, "tsconfig.json"),
        JSON.stringify({
          extends: "../../tsconfig.base.json",
          compilerOptions: {
            noEmit: true,
            composite: false,
            declaration: false,
            declarationMap: false,
            noUnusedLocals: false
          },
          include: ["*.ts"]
        })
      )
      const result = await new Promise<{ code: number; output: string }>((resolve) =>
        execFile(
          process.execPath,
          [path.join(root, "node_modules/typescript/bin/tsc"), "-p", dir],
          { cwd: root, maxBuffer: 16 * 1024 * 1024 },
          (error, stdout, stderr) =>
            resolve({ code: error === null ? 0 : Number(error.code ?? 1), output: stdout + stderr })
        )
      )
      expect(result.output.replaceAll(dir, "README").trim()).toBe("")
      expect(result.code).toBe(0)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
