import { JsonBackend, MockBackend, SchemaRef } from "@deimos/core"
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
const keySchema = {
  schema: SchemaRef.fromSchema(Schema.Struct({ id: Schema.Int, region: Schema.String }), {
    name: "WidgetKey",
    namespace: "com.example"
  }),
  valid: { id: 1, region: "eu" },
  invalid: { id: "one" }
}
const common = { schema: Widget, keyField: "id", keySchema, valid, loose, invalid }

SchemaBackendSuite.suite("mock", {
  ...common,
  validates: false,
  encodes: true,
  layer: MockBackend.layerMock
})
SchemaBackendSuite.suite("mockValidating", {
  ...common,
  validates: true,
  encodes: true,
  layer: MockBackend.layerMockValidating
})
SchemaBackendSuite.suite("json", {
  ...common,
  validates: true,
  encodes: true,
  layer: JsonBackend.layer
})
