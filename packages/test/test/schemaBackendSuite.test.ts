import { SchemaBackend, SchemaRef } from "@deimos/core"
import { SchemaBackendSuite } from "@deimos/test"
import * as Schema from "effect/Schema"

const Widget = SchemaRef.fromSchema(
  Schema.Struct({
    id: Schema.Int,
    name: Schema.String,
    price: Schema.NullOr(Schema.Number),
    tags: Schema.Array(Schema.String),
    dimensions: Schema.NullOr(Schema.Struct({ width: Schema.Number, height: Schema.Number })),
    updated_at: Schema.Number
  }),
  { name: "Widget", namespace: "com.example" }
)

const valid = {
  id: 1,
  name: "w",
  price: null,
  tags: ["a"],
  dimensions: { width: 1, height: 2 },
  updated_at: 1_700_000_000_123
}
const loose = {
  id: "1",
  name: "w",
  price: null,
  tags: ["a"],
  dimensions: { width: "1", height: 2 },
  updated_at: new Date(1_700_000_000_123)
}
const invalid = { payload: { id: "x", tags: [1] }, paths: ["id", "name", "updated_at"] }

SchemaBackendSuite.suite("mock", {
  validates: false,
  schema: Widget,
  keyField: "id",
  valid,
  loose,
  invalid,
  layer: SchemaBackend.layerMock
})
SchemaBackendSuite.suite("mockValidating", {
  validates: true,
  schema: Widget,
  keyField: "id",
  valid,
  loose,
  invalid,
  layer: SchemaBackend.layerMockValidating
})
SchemaBackendSuite.suite("json", {
  validates: true,
  schema: Widget,
  keyField: "id",
  valid,
  loose,
  invalid,
  layer: SchemaBackend.layerJson
})
