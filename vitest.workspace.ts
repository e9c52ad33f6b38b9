import { defineWorkspace } from "vitest/config"
import { alias } from "./vitest.shared.js"

const project = (name: string, root: string, testTimeout: number) => ({
  resolve: { alias },
  test: { name, root, include: ["test/**/*.test.ts"], testTimeout, hookTimeout: 60_000 }
})

const pkg = (name: string, extra: { testTimeout?: number } = {}) =>
  project(name, `./packages/${name}`, extra.testTimeout ?? 20_000)

export default defineWorkspace([
  pkg("core"),
  pkg("test"),
  pkg("broker", { testTimeout: 60_000 }),
  pkg("avro", { testTimeout: 60_000 }),
  pkg("kafka", { testTimeout: 90_000 }),
  pkg("sql", { testTimeout: 90_000 }),
  pkg("checkpoint", { testTimeout: 90_000 }),
  pkg("console", { testTimeout: 90_000 }),
  pkg("cli", { testTimeout: 90_000 }),
  project("examples", "./examples", 120_000)
])
