import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Schema from "effect/Schema"
import * as Tracer from "effect/Tracer"
import * as SchemaRef from "../src/SchemaRef.js"

export const WidgetSchema = Schema.Struct({
  id: Schema.Int,
  name: Schema.String,
  price: Schema.optional(Schema.Number),
  tags: Schema.optional(Schema.Array(Schema.String)),
  dimensions: Schema.optional(Schema.Struct({ width: Schema.Number, height: Schema.Number })),
  message_id: Schema.optional(Schema.String),
  timestamp: Schema.optional(Schema.Date)
})
export type Widget = typeof WidgetSchema.Type

export const Widget = SchemaRef.fromSchema(WidgetSchema, { name: "Widget", namespace: "com.example" })

export const PlainSchema = Schema.Struct({ id: Schema.Int, body: Schema.String })
export const Plain = SchemaRef.fromSchema(PlainSchema, { name: "com.example.Plain" })

export const WidgetKey = SchemaRef.fromSchema(Schema.Struct({ region: Schema.String, id: Schema.Int }), {
  name: "WidgetKey",
  namespace: "com.example"
})

/**
 * A tracer that is not Effect's built-in one (it makes the same spans): the processor then gives each message its
 * `deimos-consumer` span, as with any installed tracer.
 */
export const InstalledTracer = Tracer.make({
  span: (...args) => Context.get(DefaultServices.liveServices, Tracer.Tracer).span(...args),
  context: (f) => f()
})
