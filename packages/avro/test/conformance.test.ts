import { AvroBackend } from "@deimos/avro"
import { SchemaRegistry } from "@deimos/broker"
import { SchemaBackendSuite } from "@deimos/test"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { invalid, keySchema, loose, schemaDir, valid, Widget } from "./fixtures.js"

const common = { validates: true, encodes: true, schema: Widget, keyField: "id", keySchema, valid, loose, invalid }

SchemaBackendSuite.suite("avroLocal", { ...common, layer: AvroBackend.layerLocal({ schemaDirs: [schemaDir] }) })
SchemaBackendSuite.suite("avroValidation", {
  ...common,
  layer: AvroBackend.layerValidation({ schemaDirs: [schemaDir] })
})
SchemaBackendSuite.suite("avroSchemaRegistry", {
  ...common,
  layer: Layer.unwrapEffect(
    Effect.map(
      SchemaRegistry.SchemaRegistry,
      ({ url }) => AvroBackend.layerSchemaRegistry({ url, schemaDirs: [schemaDir] })
    )
  ).pipe(Layer.provide(SchemaRegistry.layer({ port: 0 })))
})
