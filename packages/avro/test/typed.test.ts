import { describe, expect, it } from "@effect/vitest"
import avro from "avsc"
import * as Schema from "effect/Schema"
import { typedReader } from "../src/internal/typed.js"
import { Widget, WidgetSchema } from "./generated/index.js"
import * as Rich from "./generated/rich/index.js"

const typeOf = (json: unknown) => avro.Type.forSchema(json as avro.Schema)

/** The typed reader reads what Effect Schema decodes from what avsc reads with the plain type. */
const agrees = <A, I>(schema: Schema.Schema<A, I>, avroJson: unknown, values: ReadonlyArray<unknown>) => {
  const type = typeOf(avroJson)
  const reader = typedReader(type, schema.ast)?.type
  expect(reader).toBeDefined()
  const decode = Schema.decodeUnknownSync(schema)
  for (const value of values) {
    const bytes = type.toBuffer(value)
    expect(reader!.fromBuffer(bytes)).toEqual(decode(type.fromBuffer(bytes)))
  }
  return reader!
}

const record = (fields: ReadonlyArray<unknown>, name = "R") => ({ type: "record", name, fields })

describe("the typed reader", () => {
  it("reads generated handles' decoded values: Dates where the Schema has DateFromNumber, at every depth", () => {
    const widget = {
      id: 1,
      name: "w",
      price: null,
      tags: ["a"],
      status: "RETIRED",
      dimensions: { width: 1, height: 2 },
      attributes: { a: "b" },
      updated_at: 5,
      seen_at_micros: 7
    }
    const reader = agrees(WidgetSchema, Widget.avro, [
      widget,
      { ...widget, dimensions: null, seen_at_micros: null }
    ])
    expect(reader.fromBuffer(typeOf(Widget.avro).toBuffer(widget)).updated_at).toEqual(new Date(5))
    const node = { value: 1, at: 10, children: [{ value: 2, at: 20, children: [], next: null }], next: null }
    const tree = agrees(Rich.NodeSchema, Rich.Node.avro, [node]).fromBuffer(typeOf(Rich.Node.avro).toBuffer(node))
    expect(tree.children[0].at).toEqual(new Date(20))
  })

  it("is the plain type itself when the Schema converts nothing", () => {
    const type = typeOf(record([{ name: "n", type: "double" }, { name: "s", type: ["null", "string"] }]))
    expect(typedReader(type, Schema.Struct({ n: Schema.Number, s: Schema.NullOr(Schema.String) }).ast))
      .toEqual({ type, exact: true })
  })

  it("reads defaults of a newer reader through a resolver: a defaulted timestamp is a Date", () => {
    const reader = typedReader(
      typeOf(record([{ name: "id", type: "long" }, {
        name: "at",
        type: { type: "long", logicalType: "timestamp-millis" },
        default: 5
      }])),
      Schema.Struct({ id: Schema.Int, at: Schema.DateFromNumber }).ast
    )!.type
    const writer = typeOf(record([{ name: "id", type: "int" }]))
    const read = reader.fromBuffer(writer.toBuffer({ id: 3 }), reader.createResolver(writer))
    expect(read).toEqual({ id: 3, at: new Date(5) })
    expect(reader.fromBuffer(writer.toBuffer({ id: 4 }), reader.createResolver(writer)).at).not.toBe(read.at)
  })

  it("is refused when the Schema would not decode every value Avro reads to that value", () => {
    const refused = (json: unknown, schema: Schema.Schema.Any) =>
      expect(typedReader(typeOf(json), schema.ast)).toBeUndefined()
    // an Int where Avro reads any double
    refused(record([{ name: "n", type: "double" }]), Schema.Struct({ n: Schema.Int }))
    // a field the Struct does not declare (Effect Schema would drop it)
    refused(record([{ name: "a", type: "int" }, { name: "b", type: "int" }]), Schema.Struct({ a: Schema.Int }))
    // a required property Avro has no field for
    refused(record([{ name: "a", type: "int" }]), Schema.Struct({ a: Schema.Int, b: Schema.Int }))
    // null where the Schema has no null
    refused(record([{ name: "s", type: ["null", "string"] }]), Schema.Struct({ s: Schema.String }))
    // an enum symbol the Schema's literals lack
    refused(
      record([{ name: "e", type: { type: "enum", name: "E", symbols: ["A", "B"] } }]),
      Schema.Struct({ e: Schema.Literal("A") })
    )
    // two members that could decode one branch, and transformations other than DateFromNumber
    refused(record([{ name: "n", type: "long" }]), Schema.Struct({ n: Schema.Union(Schema.Number, Schema.Int) }))
    refused(record([{ name: "n", type: "string" }]), Schema.Struct({ n: Schema.NumberFromString }))
    refused(record([{ name: "n", type: "string" }]), Schema.Struct({ n: Schema.String.pipe(Schema.minLength(1)) }))
    // wrapped unions (generated Rich.Order has them)
    refused(Rich.Order.avro, Rich.OrderSchema)
  })

  it("accepts an optional property Avro has no field for (not exact: a payload may carry it), and unknown values", () => {
    const json = record([{ name: "a", type: "int" }, { name: "at", type: "long" }])
    const schema = Schema.Struct({ a: Schema.Unknown, at: Schema.DateFromNumber, b: Schema.optional(Schema.String) })
    agrees(schema, json, [{ a: 1, at: 2 }])
    expect(typedReader(typeOf(json), schema.ast)?.exact).toBe(false)
    expect(typedReader(typeOf(json), Schema.Struct({ a: Schema.Int, at: Schema.DateFromNumber }).ast)?.exact)
      .toBe(true)
  })
})
