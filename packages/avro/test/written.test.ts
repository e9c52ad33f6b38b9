import { describe, expect, it } from "@effect/vitest"
import avro from "avsc"
import { collectNamed, type Named, writtenOut } from "../src/internal/schemas.js"

/** Three files: a record with a nested one (no namespace of its own), a record of another namespace using it. */
const outer = {
  type: "record",
  name: "Outer",
  namespace: "a.b",
  fields: [{
    name: "inner",
    type: {
      type: "record",
      name: "Inner",
      doc: "defined inside Outer",
      fields: [{ name: "at", type: { type: "long", logicalType: "timestamp-millis" }, doc: "when" }]
    }
  }]
}
const top = {
  doc: "uses Inner twice",
  fields: [
    { name: "x", type: "a.b.Inner" },
    { type: ["null", "a.b.Inner"], name: "y", default: null },
    { name: "k", type: { type: "enum", name: "Kind", symbols: ["A"], "x-custom": 1 } },
    { name: "again", type: "Kind" }
  ],
  namespace: "c",
  name: "Top",
  type: "record"
}
const plain = { type: "record", name: "Plain", fields: [{ name: "i", type: "a.b.Inner" }] }

const named = new Map<string, Named>()
for (const [file, json] of [["Outer.avsc", outer], ["Top.avsc", top], ["Plain.avsc", plain]] as const) {
  collectNamed(json, undefined, file, named)
}

/** avsc's types of a schema parsed on its own (no other file), by full name. */
const parsed = (schema: unknown) => {
  const registry: { [name: string]: avro.Type } = {}
  avro.Type.forSchema(schema as avro.Schema, { registry })
  return registry
}

describe("a schema written out for registration", () => {
  it("stands on its own: a type of another namespace is written where first used, with its namespace", () => {
    const written = writtenOut(top, named, "c.Top") as { readonly fields: ReadonlyArray<{ readonly type: unknown }> }
    expect(written.fields[0].type).toEqual({
      name: "Inner",
      namespace: "a.b",
      type: "record",
      fields: [{ name: "at", type: { type: "long", logicalType: "timestamp-millis" }, doc: "when" }],
      doc: "defined inside Outer"
    })
    // after its definition, a type of another namespace is referred to by its full name, one of its own by name
    expect(written.fields[1].type).toEqual(["null", "a.b.Inner"])
    expect(written.fields[3].type).toBe("Kind")
    expect(Object.keys(parsed(written)).filter((n) => n.includes("."))).toEqual(
      expect.arrayContaining(["c.Top", "a.b.Inner", "c.Kind"])
    )
  })

  it("keeps every attribute and writes keys in canonical order, so one schema is one text", () => {
    const text = JSON.stringify(writtenOut(top, named, "c.Top"))
    expect(text.startsWith(`{"name":"Top","namespace":"c","type":"record","fields":[`)).toBe(true)
    expect(text).toContain(`"doc":"uses Inner twice"`)
    expect(text).toContain(`{"name":"Kind","type":"enum","symbols":["A"],"x-custom":1}`)
    expect(text).toContain(`{"name":"y","type":["null","a.b.Inner"],"default":null}`)
    // written again, it is the same text; written from a differently ordered copy too
    expect(JSON.stringify(writtenOut(JSON.parse(text), named, "c.Top"))).toBe(text)
    const reordered = Object.fromEntries(Object.entries(top).reverse())
    expect(JSON.stringify(writtenOut(reordered, named, "c.Top"))).toBe(text)
  })

  it("gives a nested type registered on its own the namespace it had inside its file", () => {
    const inner = writtenOut(named.get("a.b.Inner")!.json, named, "a.b.Inner")
    expect(inner).toMatchObject({ name: "Inner", namespace: "a.b" })
    expect(Object.keys(parsed(inner))).toContain("a.b.Inner")
    // from the null namespace, a namespaced type written out carries its namespace
    const fromPlain = writtenOut(plain, named, "Plain") as {
      readonly fields: ReadonlyArray<{ readonly type: unknown }>
    }
    expect(fromPlain).not.toHaveProperty("namespace")
    expect(fromPlain.fields[0].type).toMatchObject({ name: "Inner", namespace: "a.b" })
    expect(Object.keys(parsed(fromPlain))).toEqual(expect.arrayContaining(["Plain", "a.b.Inner"]))
  })
})
