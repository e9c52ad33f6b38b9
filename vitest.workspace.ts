import { defineWorkspace } from "vitest/config"
import { alias } from "./vitest.shared.js"

const pkg = (name: string, extra: { testTimeout?: number } = {}) => ({
  resolve: { alias },
  test: {
    name,
    root: `./packages/${name}`,
    include: ["test/**/*.test.ts"],
    testTimeout: extra.testTimeout ?? 20_000,
    hookTimeout: 60_000
  }
})

export default defineWorkspace([
  pkg("core"),
  pkg("test"),
  pkg("broker", { testTimeout: 60_000 }),
  pkg("avro", { testTimeout: 60_000 }),
  pkg("kafka", { testTimeout: 90_000 }),
  pkg("sql", { testTimeout: 90_000 }),
  pkg("cli", { testTimeout: 90_000 })
])
