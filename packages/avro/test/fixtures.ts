import { SchemaRef } from "@deimos/core"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const schemaDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "schemas")

export interface Widget {
  readonly id: number
  readonly name: string
  readonly price: number | null
  readonly tags: ReadonlyArray<string>
  readonly status: "ACTIVE" | "RETIRED"
  readonly dimensions: { readonly width: number; readonly height: number } | null
  readonly attributes: Readonly<Record<string, string>>
  readonly updated_at: number
  readonly seen_at_micros: number | null
}

/** Resolved by name from the schema directory. */
export const Widget = SchemaRef.make<Widget>({ name: "Widget", namespace: "com.example" })

export const valid: Widget = {
  id: 1,
  name: "w",
  price: null,
  tags: ["a"],
  status: "ACTIVE",
  dimensions: { width: 1, height: 2 },
  attributes: {},
  updated_at: 1_700_000_000_123,
  seen_at_micros: 1_700_000_000_123_456
}

export const loose = {
  ...valid,
  id: "1",
  dimensions: { width: "1", height: 2 },
  updated_at: new Date(1_700_000_000_123),
  seen_at_micros: "1700000000123456"
}

export const invalid = { payload: { id: "x", tags: [1] }, paths: ["id", "name", "updated_at"] }

/** A key schema of its own, resolved by name from the schema directory. */
export const keySchema = {
  schema: SchemaRef.make<{ readonly id: number; readonly region: string }>({
    name: "WidgetKey",
    namespace: "com.example"
  }),
  valid: { id: 1, region: "eu" },
  invalid: { id: "one" }
}
