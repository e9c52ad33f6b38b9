import { describe, expect, it } from "@effect/vitest"
import avro from "avsc"
import * as Either from "effect/Either"
import * as Avro from "../src/registry/avro.js"
import * as Compatibility from "../src/registry/compatibility.js"

const parse = (schema: unknown): Avro.Parsed =>
  Either.getOrThrowWith(Avro.parse(JSON.stringify(schema)), (why) => new Error(why))
const node = (schema: unknown) => parse(schema).node
const record = (fields: ReadonlyArray<object>, name = "User", namespace = "test") => ({
  type: "record",
  name,
  namespace,
  fields
})
const enumOf = (symbols: ReadonlyArray<string>, extra: object = {}) => ({
  type: "enum",
  name: "Color",
  symbols,
  ...extra
})

/** The incompatibility types found when `reader` reads data written with `writer`. */
const problems = (reader: unknown, writer: unknown) =>
  Compatibility.canRead(node(reader), node(writer)).map((i) => i.type)

describe("Avro schema parsing", () => {
  it("rejects what is not an Avro schema, saying why", () => {
    expect(Avro.parse("{not json")).toEqual(Either.left(expect.stringContaining("not JSON")))
    expect(Either.isLeft(Avro.parse(JSON.stringify({ type: "recrod", name: "X", fields: [] })))).toBe(true)
    expect(Either.isLeft(Avro.parse(JSON.stringify(record([{ name: "a", type: "Nope" }]))))).toBe(true)
    // a default of the wrong type
    expect(Either.isLeft(Avro.parse(JSON.stringify(record([{ name: "a", type: "int", default: "x" }]))))).toBe(true)
    // duplicate union branches
    expect(Either.isLeft(Avro.parse(JSON.stringify(["int", "int"])))).toBe(true)
  })

  it("accepts unions avsc can only hold wrapped (int and long, two records)", () => {
    expect(Either.isRight(Avro.parse(JSON.stringify(["int", "long"])))).toBe(true)
    const a = record([{ name: "x", type: "int" }], "A")
    const b = record([{ name: "y", type: "string" }], "B")
    expect(Either.isRight(Avro.parse(JSON.stringify(["null", a, b])))).toBe(true)
  })

  it("canonical form: whitespace, key order and namespace + name vs full name do not matter", () => {
    const one = parse({ type: "record", name: "User", namespace: "a.b", fields: [{ name: "id", type: "int" }] })
    const two = Either.getOrThrow(
      Avro.parse(
        `{ "fields" : [ { "type" : { "type": "int" }, "name" : "id" } ],\n "name" : "a.b.User", "type":"record" }`
      )
    )
    expect(two.canonical).toBe(one.canonical)
    expect(JSON.parse(one.canonical)).toEqual({
      type: "record",
      name: "a.b.User",
      fields: [{ name: "id", type: "int" }]
    })
  })

  it("canonical form keeps logical types, defaults, docs, aliases and custom attributes", () => {
    const schema = record([
      { name: "at", type: { type: "long", logicalType: "timestamp-millis" }, doc: "when", default: 0 },
      { name: "amount", type: { type: "bytes", logicalType: "decimal", precision: 9, scale: 2 } },
      { name: "old", type: "string", aliases: ["older"], default: "", "x-owner": "team" }
    ])
    const canonical = JSON.parse(parse(schema).canonical)
    expect(canonical.fields).toEqual([
      { name: "at", type: { type: "long", logicalType: "timestamp-millis" }, default: 0, doc: "when" },
      { name: "amount", type: { type: "bytes", logicalType: "decimal", precision: 9, scale: 2 } },
      { name: "old", type: "string", aliases: ["older"], default: "", "x-owner": "team" }
    ])
    // a different logical type is a different schema
    const plain = record([
      { name: "at", type: "long", doc: "when", default: 0 },
      { name: "amount", type: { type: "bytes", logicalType: "decimal", precision: 9, scale: 2 } },
      { name: "old", type: "string", aliases: ["older"], default: "", "x-owner": "team" }
    ])
    expect(parse(plain).canonical).not.toBe(parse(schema).canonical)
  })

  it("canonical form references a named type by full name after its definition and is itself valid Avro", () => {
    const address = { type: "record", name: "Address", fields: [{ name: "city", type: "string" }] }
    const schema = record([{ name: "home", type: address }, { name: "work", type: "Address" }])
    const canonical = parse(schema).canonical
    expect(JSON.parse(canonical).fields[1]).toEqual({ name: "work", type: "test.Address" })
    const reparsed = Either.getOrThrow(Avro.parse(canonical))
    expect(reparsed.canonical).toBe(canonical)
    const type = avro.Type.forSchema(JSON.parse(canonical))
    expect(type.isValid({ home: { city: "a" }, work: { city: "b" } })).toBe(true)
  })

  it("recursive records parse and check", () => {
    const list = { type: "record", name: "Node", fields: [{ name: "next", type: ["null", "Node"] }] }
    const listWithValue = {
      type: "record",
      name: "Node",
      fields: [{ name: "next", type: ["null", "Node"] }, { name: "value", type: "int", default: 0 }]
    }
    expect(problems(listWithValue, list)).toEqual([])
    expect(problems(list, listWithValue)).toEqual([])
  })
})

describe("Avro compatibility rules (reader can read writer)", () => {
  const v1 = record([{ name: "id", type: "int" }])
  const withDefault = record([{ name: "id", type: "int" }, { name: "email", type: "string", default: "" }])
  const withoutDefault = record([{ name: "id", type: "int" }, { name: "email", type: "string" }])

  it("records: a reader field the writer lacks needs a default; writer fields the reader lacks are skipped", () => {
    expect(problems(withDefault, v1)).toEqual([])
    expect(Compatibility.canRead(node(withoutDefault), node(v1))).toEqual([
      expect.objectContaining({ type: "READER_FIELD_MISSING_DEFAULT_VALUE", location: "/fields/email" })
    ])
    expect(problems(v1, withoutDefault)).toEqual([])
  })

  it("records: a renamed field is matched through the reader field's aliases", () => {
    const renamed = record([{ name: "userId", type: "int", aliases: ["id"] }])
    expect(problems(renamed, v1)).toEqual([])
    expect(problems(record([{ name: "userId", type: "int" }]), v1)).toEqual(["READER_FIELD_MISSING_DEFAULT_VALUE"])
  })

  it("records: named by unqualified name or a reader alias", () => {
    expect(problems(record([{ name: "id", type: "int" }], "Person"), v1)).toEqual(["NAME_MISMATCH"])
    expect(problems({ ...record([{ name: "id", type: "int" }], "Person"), aliases: ["test.User"] }, v1)).toEqual([])
    // Avro's rules compare unqualified names: a namespace change alone is compatible
    expect(problems(record([{ name: "id", type: "int" }], "User", "other"), v1)).toEqual([])
  })

  it("records: a nested type change is reported at its path", () => {
    const outer = (inner: string) => record([{ name: "address", type: record([{ name: "zip", type: inner }], "A") }])
    expect(Compatibility.canRead(node(outer("int")), node(outer("string")))).toEqual([
      expect.objectContaining({ type: "TYPE_MISMATCH", location: "/fields/address/fields/zip" })
    ])
  })

  it.each([
    ["int", "long", true],
    ["int", "float", true],
    ["int", "double", true],
    ["long", "float", true],
    ["long", "double", true],
    ["float", "double", true],
    ["string", "bytes", true],
    ["bytes", "string", true],
    ["long", "int", false],
    ["double", "float", false],
    ["float", "long", false],
    ["int", "string", false],
    ["null", "int", false],
    ["boolean", "int", false]
  ])("promotion: written as %s, read as %s → %s", (writer, reader, ok) => {
    expect(problems(reader, writer)).toEqual(ok ? [] : ["TYPE_MISMATCH"])
  })

  it("enums: writer symbols must be reader symbols, unless the reader has a default", () => {
    expect(problems(enumOf(["RED", "GREEN", "BLUE"]), enumOf(["RED", "GREEN"]))).toEqual([])
    expect(problems(enumOf(["RED"]), enumOf(["RED", "GREEN"]))).toEqual(["MISSING_ENUM_SYMBOLS"])
    expect(problems(enumOf(["RED", "UNKNOWN"], { default: "UNKNOWN" }), enumOf(["RED", "GREEN"]))).toEqual([])
    expect(problems({ ...enumOf(["RED"]), name: "Colour" }, enumOf(["RED"]))).toEqual(["NAME_MISMATCH"])
  })

  it("fixed: same name and size", () => {
    const fixed = (size: number, name = "Hash") => ({ type: "fixed", name, size })
    expect(problems(fixed(16), fixed(16))).toEqual([])
    expect(problems(fixed(16), fixed(32))).toEqual(["FIXED_SIZE_MISMATCH"])
    expect(problems(fixed(16, "Digest"), fixed(16))).toEqual(["NAME_MISMATCH"])
    expect(problems("bytes", fixed(16))).toEqual(["TYPE_MISMATCH"])
  })

  it("arrays and maps: their items and values, with promotion", () => {
    expect(problems({ type: "array", items: "long" }, { type: "array", items: "int" })).toEqual([])
    expect(problems({ type: "array", items: "int" }, { type: "array", items: "long" })).toEqual(["TYPE_MISMATCH"])
    expect(problems({ type: "map", values: "double" }, { type: "map", values: "float" })).toEqual([])
    expect(problems({ type: "map", values: "int" }, { type: "map", values: "string" })).toEqual(["TYPE_MISMATCH"])
    expect(problems({ type: "map", values: "int" }, { type: "array", items: "int" })).toEqual(["TYPE_MISMATCH"])
  })

  it("unions: every writer branch must be readable; a reader union needs a branch for the writer", () => {
    expect(problems(["null", "int", "string"], ["null", "int"])).toEqual([])
    expect(problems(["null", "int"], ["null", "int", "string"])).toEqual(["MISSING_UNION_BRANCH"])
    expect(problems(["null", "long"], "int")).toEqual([])
    expect(problems(["null", "string"], "int")).toEqual(["MISSING_UNION_BRANCH"])
    expect(problems("long", ["int", "long"])).toEqual([])
    expect(problems("int", ["null", "int"])).toEqual(["TYPE_MISMATCH"])
    // making a field optional with a default: readable both ways only with the default
    const optional = record([{ name: "id", type: ["null", "int"], default: null }])
    expect(problems(optional, v1)).toEqual([])
    expect(problems(v1, optional)).toEqual(["TYPE_MISMATCH"])
  })

  it("agrees with avsc's resolver where avsc follows the same rules", () => {
    const pairs: ReadonlyArray<readonly [unknown, unknown]> = [
      [withDefault, v1],
      [withoutDefault, v1],
      [v1, withoutDefault],
      [record([{ name: "id", type: "long" }]), v1],
      [v1, record([{ name: "id", type: "long" }])],
      [enumOf(["A", "B", "C"]), enumOf(["A", "B"])],
      [enumOf(["A"]), enumOf(["A", "B"])],
      [["null", "int"], ["null", "int", "string"]],
      [{ type: "array", items: "double" }, { type: "array", items: "float" }],
      [{ type: "fixed", name: "F", size: 4 }, { type: "fixed", name: "F", size: 8 }]
    ]
    for (const [reader, writer] of pairs) {
      const byAvsc = (() => {
        try {
          avro.Type.forSchema(reader as avro.Schema, { wrapUnions: true }).createResolver(
            avro.Type.forSchema(writer as avro.Schema, { wrapUnions: true })
          )
          return true
        } catch {
          return false
        }
      })()
      expect({ reader, writer, compatible: problems(reader, writer).length === 0 }).toEqual({
        reader,
        writer,
        compatible: byAvsc
      })
    }
  })
})

describe("compatibility levels", () => {
  const v1 = node(record([{ name: "id", type: "int" }]))
  const addedWithDefault = node(record([{ name: "id", type: "int" }, { name: "email", type: "string", default: "" }]))
  const addedWithoutDefault = node(record([{ name: "id", type: "int" }, { name: "email", type: "string" }]))
  const removedId = node(record([{ name: "email", type: "string", default: "" }]))

  it("BACKWARD: the new schema reads data written with the latest", () => {
    expect(Compatibility.check("BACKWARD", addedWithDefault, [v1])).toEqual([])
    expect(Compatibility.check("BACKWARD", addedWithoutDefault, [v1])).toEqual([
      expect.stringContaining("READER_FIELD_MISSING_DEFAULT_VALUE at /fields/email")
    ])
    // removing a field: new readers skip it
    expect(Compatibility.check("BACKWARD", v1, [addedWithoutDefault])).toEqual([])
  })

  it("FORWARD: the latest reads data written with the new schema", () => {
    expect(Compatibility.check("FORWARD", addedWithoutDefault, [v1])).toEqual([])
    // removing a field without default: old readers need it
    expect(Compatibility.check("FORWARD", v1, [addedWithoutDefault])).toHaveLength(1)
    expect(Compatibility.check("FORWARD", removedId, [addedWithDefault])).toHaveLength(1)
  })

  it("FULL: both directions; NONE: anything", () => {
    expect(Compatibility.check("FULL", addedWithDefault, [v1])).toEqual([])
    expect(Compatibility.check("FULL", addedWithoutDefault, [v1])).toHaveLength(1)
    expect(Compatibility.check("FULL", v1, [addedWithoutDefault])).toHaveLength(1)
    expect(Compatibility.check("NONE", node("string"), [v1])).toEqual([])
  })

  it("type promotion int → long is BACKWARD but not FORWARD", () => {
    const asLong = node(record([{ name: "id", type: "long" }]))
    expect(Compatibility.check("BACKWARD", asLong, [v1])).toEqual([])
    expect(Compatibility.check("FORWARD", asLong, [v1])).toHaveLength(1)
  })

  it("enum symbols: adding is BACKWARD, removing is FORWARD", () => {
    const two = node(enumOf(["RED", "GREEN"]))
    const three = node(enumOf(["RED", "GREEN", "BLUE"]))
    expect(Compatibility.check("BACKWARD", three, [two])).toEqual([])
    expect(Compatibility.check("FORWARD", three, [two])).toHaveLength(1)
    expect(Compatibility.check("BACKWARD", two, [three])).toHaveLength(1)
    expect(Compatibility.check("FORWARD", two, [three])).toEqual([])
  })

  it("non-transitive levels check the latest only; _TRANSITIVE every earlier version", () => {
    // v1, then email with a default, then email required: reads v2 data, not v1 data (no email there)
    const required = node(record([{ name: "id", type: "int" }, { name: "email", type: "string" }]))
    expect(Compatibility.check("BACKWARD", required, [v1, addedWithDefault])).toEqual([])
    expect(Compatibility.check("BACKWARD_TRANSITIVE", required, [v1, addedWithDefault])).toHaveLength(1)
    // dropping x: v2 readers (x has a default) read it, v1 readers (x required) do not
    const a = node(record([{ name: "id", type: "int" }, { name: "x", type: "int" }]))
    const b = node(record([{ name: "id", type: "int" }, { name: "x", type: "int", default: 0 }]))
    const c = node(record([{ name: "id", type: "int" }]))
    expect(Compatibility.check("FORWARD", c, [a, b])).toEqual([])
    expect(Compatibility.check("FORWARD_TRANSITIVE", c, [a, b])).toHaveLength(1)
    expect(Compatibility.check("FULL", c, [a, b])).toEqual([])
    expect(Compatibility.check("FULL_TRANSITIVE", c, [a, b])).toHaveLength(1)
  })
})
