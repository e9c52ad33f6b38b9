import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Bridge from "../src/internal/bridge.js"
import { WidgetSchema } from "./generated/index.js"
import * as Rich from "./generated/rich/index.js"

/** The compiled bridge agrees with Effect Schema: the same value when it answers, `bail` when Effect Schema fails. */
const agrees = <A, I>(schema: Schema.Schema<A, I>, values: ReadonlyArray<unknown>, wires: ReadonlyArray<unknown>) => {
  const bridge = Bridge.compile(schema.ast)
  expect(bridge).toBeDefined()
  const encode = Schema.encodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })
  const decode = Schema.decodeUnknownEither(schema, { errors: "all" })
  let answered = 0
  for (const v of values) {
    const fast = bridge!.encode(v)
    const slow = encode(v)
    if (fast === Bridge.bail) continue
    answered++
    expect(Either.isRight(slow), JSON.stringify(v)).toBe(true)
    expect(fast).toEqual(Either.getOrThrow(slow))
  }
  for (const w of wires) {
    const fast = bridge!.decode(w)
    const slow = decode(w)
    if (fast === Bridge.bail) continue
    answered++
    expect(Either.isRight(slow), JSON.stringify(w)).toBe(true)
    expect(fast).toStrictEqual(Either.getOrThrow(slow))
  }
  return answered
}

describe("the compiled Effect Schema bridge", () => {
  it("answers like Effect Schema on generated schemas, and bails on what Effect Schema refuses", () => {
    const widget = { id: 1, name: "w", updated_at: new Date(5), tags: ["a"], price: null, status: "ACTIVE" as const }
    const wire = { ...widget, updated_at: 5, dimensions: null, attributes: { a: "b" }, seen_at_micros: 7 }
    const answered = agrees(WidgetSchema, [
      widget,
      { ...widget, price: undefined },
      { ...widget, updated_at: 5 }, // not a Date
      { ...widget, colour: "red" }, // excess
      { ...widget, id: 1.5 }, // not an Int
      { ...widget, status: "LOST" },
      { id: 1 } // missing fields
    ], [wire, { ...wire, updated_at: "5" }, { ...wire, extra: 1 }, { ...wire, tags: [1] }])
    expect(answered).toBe(4)
    const node: Rich.Node = { value: 1, at: new Date(1), children: [{ value: 2, at: new Date(2) }], next: null }
    const order = {
      id: 1,
      day: 2,
      at_micros: 3,
      created: new Date(4),
      payment: { "com.shop.Card": { number: "4", expires: 5 } },
      checksum: new Uint8Array([1]),
      hash: new Uint8Array([1, 2, 3, 4]),
      lines: [],
      label: { string: "x" },
      note: 5,
      customer: { id: 1, name: "n" }
    }
    expect(agrees(Rich.NodeSchema, [node, { ...node, children: [{ value: "2" }] }], [{ value: 1, at: 1, next: null }]))
      .toBe(2)
    expect(
      agrees(Rich.OrderSchema, [order, { ...order, payment: { "com.shop.Card": { number: 4 } } }], [{
        ...order,
        created: 4
      }])
    ).toBe(2)
  })

  it("refuses schemas it does not know (Effect Schema runs them)", () => {
    expect(Bridge.compile(Schema.String.pipe(Schema.minLength(2)).ast)).toBeUndefined()
    expect(Bridge.compile(Schema.Struct({ n: Schema.NumberFromString }).ast)).toBeUndefined()
  })
})
