import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Store from "../src/registry/store.js"

const record = (fields: ReadonlyArray<object>, name = "User") =>
  JSON.stringify({ type: "record", name, namespace: "test", fields })
const v1 = record([{ name: "id", type: "int" }])
const v2 = record([{ name: "id", type: "int" }, { name: "email", type: "string", default: "" }])
const breaking = record([{ name: "id", type: "int" }, { name: "email", type: "string" }])

const ok = <A>(either: Either.Either<A, Store.ApiError>): A =>
  Either.getOrThrowWith(either, (error) => new Error(`${error.errorCode}: ${error.message}`))
const code = <A>(either: Either.Either<A, Store.ApiError>) =>
  Either.match(either, { onLeft: (e) => [e.status, e.errorCode], onRight: () => "no error" })

/** Applies registrations in order, failing the test on any error. */
const registered = (...steps: ReadonlyArray<readonly [string, string]>) =>
  steps.reduce((state, [subject, schema]) => ok(Store.register(state, subject, schema)).state, Store.empty("BACKWARD"))

describe("registry store", () => {
  it("register: ids are global, versions per subject; the same schema adds nothing", () => {
    const empty = Store.empty("BACKWARD")
    const first = ok(Store.register(empty, "a-value", v1))
    expect(first.result).toEqual({ id: 1 })
    const again = ok(Store.register(first.state, "a-value", v1))
    expect(again.result).toEqual({ id: 1 })
    expect(again.state).toBe(first.state)
    // the same schema written differently is the same schema
    const reformatted = JSON.stringify({
      namespace: "test",
      name: "User",
      type: "record",
      fields: [{ type: "int", name: "id" }]
    })
    expect(ok(Store.register(first.state, "a-value", reformatted)).state).toBe(first.state)
    const second = ok(Store.register(first.state, "a-value", v2))
    expect(second.result).toEqual({ id: 2 })
    expect(ok(Store.versions(second.state, "a-value"))).toEqual([1, 2])
    const other = ok(Store.register(second.state, "b-value", v1))
    expect(other.result).toEqual({ id: 1 })
    expect(ok(Store.version(other.state, "b-value", "1"))).toMatchObject({ subject: "b-value", version: 1, id: 1 })
    expect(Store.subjects(other.state)).toEqual(["a-value", "b-value"])
  })

  it("register enforces the subject's level, else the global one, else the default", () => {
    const state = registered(["c-value", v1])
    expect(code(Store.register(state, "c-value", breaking))).toEqual([409, 409])
    const error = Either.flip(Store.register(state, "c-value", breaking))
    expect(Either.getOrThrow(error).message).toContain("\"c-value\"")
    const subjectNone = ok(Store.setConfig(state, "c-value", "NONE")).state
    expect(ok(Store.register(subjectNone, "c-value", breaking)).result).toEqual({ id: 2 })
    const globalNone = ok(Store.setConfig(state, undefined, "NONE")).state
    expect(ok(Store.register(globalNone, "c-value", breaking)).result).toEqual({ id: 2 })
    // the subject's own level wins over the global one
    const strictSubject = ok(Store.setConfig(globalNone, "c-value", "FULL")).state
    expect(code(Store.register(strictSubject, "c-value", breaking))).toEqual([409, 409])
    expect(ok(Store.register(Store.empty("NONE"), "c-value", v1)).result).toEqual({ id: 1 })
  })

  it("register rejects invalid schemas with 42201 and changes nothing", () => {
    expect(code(Store.register(Store.empty("BACKWARD"), "x", "{\"type\":\"recrod\"}"))).toEqual([422, 42201])
    expect(code(Store.register(Store.empty("BACKWARD"), "x", "not json"))).toEqual([422, 42201])
  })

  it("versions: by number, latest and -1; unknown ones 40402; malformed ones 42202", () => {
    const state = registered(["v-value", v1], ["v-value", v2])
    expect(ok(Store.version(state, "v-value", "latest")).version).toBe(2)
    expect(ok(Store.version(state, "v-value", "-1")).version).toBe(2)
    expect(ok(Store.version(state, "v-value", "1")).id).toBe(1)
    expect(code(Store.version(state, "v-value", "3"))).toEqual([404, 40402])
    for (const bad of ["0", "abc", "1.5", "-2", "2147483648", ""]) {
      expect(code(Store.version(state, "v-value", bad))).toEqual([422, 42202])
    }
    expect(code(Store.version(state, "nope", "1"))).toEqual([404, 40401])
    // as Confluent does, a malformed version is reported before an unknown subject
    expect(code(Store.version(state, "nope", "abc"))).toEqual([422, 42202])
  })

  it("lookup finds the version holding a schema: 40401 unknown subject, 40403 schema not in it", () => {
    const state = registered(["l-value", v1], ["other", v2])
    expect(ok(Store.lookup(state, "l-value", v1))).toMatchObject({ version: 1, id: 1 })
    expect(code(Store.lookup(state, "l-value", v2))).toEqual([404, 40403])
    expect(code(Store.lookup(state, "nope", v1))).toEqual([404, 40401])
  })

  it("schemas by id and the subjects holding them", () => {
    const state = registered(["s1", v1], ["s2", v1])
    expect(JSON.parse(ok(Store.schemaById(state, 1)).schema)).toMatchObject({ name: "test.User" })
    expect(ok(Store.subjectVersionsById(state, 1))).toEqual([
      { subject: "s1", version: 1 },
      { subject: "s2", version: 1 }
    ])
    expect(code(Store.schemaById(state, 2))).toEqual([404, 40403])
  })

  it("config: 40408 for a subject without one unless defaultToGlobal; invalid levels 42203", () => {
    const state = Store.empty("FORWARD")
    expect(ok(Store.getConfig(state, undefined))).toEqual({ compatibilityLevel: "FORWARD" })
    expect(code(Store.getConfig(state, "s"))).toEqual([404, 40408])
    expect(ok(Store.getConfig(state, "s", true))).toEqual({ compatibilityLevel: "FORWARD" })
    const set = ok(Store.setConfig(state, "s", "FULL_TRANSITIVE"))
    expect(set.result).toEqual({ compatibility: "FULL_TRANSITIVE" })
    expect(ok(Store.getConfig(set.state, "s"))).toEqual({ compatibilityLevel: "FULL_TRANSITIVE" })
    expect(code(Store.setConfig(state, "s", "SIDEWAYS"))).toEqual([422, 42203])
    expect(code(Store.setConfig(state, undefined, undefined))).toEqual([422, 42203])
    const removed = ok(Store.deleteConfig(set.state, "s"))
    expect(removed.result).toEqual({ compatibilityLevel: "FULL_TRANSITIVE" })
    expect(code(Store.getConfig(removed.state, "s"))).toEqual([404, 40408])
  })

  it("compatibility: against latest, a given version, or as registering would", () => {
    const state = registered(["k", v1], ["k", v2])
    expect(ok(Store.compatibility(state, "k", breaking, "latest")).is_compatible).toBe(true)
    expect(ok(Store.compatibility(state, "k", breaking, "1"))).toMatchObject({
      is_compatible: false,
      messages: [expect.stringContaining("READER_FIELD_MISSING_DEFAULT_VALUE")]
    })
    const transitive = ok(Store.setConfig(state, "k", "BACKWARD_TRANSITIVE")).state
    expect(ok(Store.compatibility(transitive, "k", breaking, "latest")).is_compatible).toBe(true)
    expect(ok(Store.compatibility(transitive, "k", breaking, undefined)).is_compatible).toBe(false)
    // a subject without versions is compatible with anything, but a numbered version of it does not exist
    expect(ok(Store.compatibility(state, "new", v1, "latest")).is_compatible).toBe(true)
    expect(code(Store.compatibility(state, "new", v1, "1"))).toEqual([404, 40401])
    expect(code(Store.compatibility(state, "k", v1, "9"))).toEqual([404, 40402])
    expect(code(Store.compatibility(state, "k", v1, "x"))).toEqual([422, 42202])
    expect(code(Store.compatibility(state, "k", "{", "latest"))).toEqual([422, 42201])
  })

  it("delete a subject or one version", () => {
    const state = ok(Store.setConfig(registered(["d", v1], ["d", v2]), "d", "NONE")).state
    const one = ok(Store.deleteVersion(state, "d", "1"))
    expect(one.result).toBe(1)
    expect(ok(Store.versions(one.state, "d"))).toEqual([2])
    const all = ok(Store.deleteSubject(state, "d"))
    expect(all.result).toEqual([1, 2])
    expect(code(Store.versions(all.state, "d"))).toEqual([404, 40401])
    expect(code(Store.getConfig(all.state, "d"))).toEqual([404, 40408])
    expect(code(Store.deleteSubject(all.state, "d"))).toEqual([404, 40401])
    // ids survive: registering the schema again answers its old id
    expect(ok(Store.register(all.state, "d", v2)).result).toEqual({ id: 2 })
    const last = ok(Store.deleteVersion(one.state, "d", "latest"))
    expect(Store.subjects(last.state)).toEqual([])
  })

  it("encode / decode round trip: ids, versions, configs, next id", () => {
    const state = ok(Store.setConfig(
      ok(Store.setConfig(registered(["p", v1], ["p", v2], ["q", v1]), "q", "NONE")).state,
      undefined,
      "FULL"
    )).state
    const back = Either.getOrThrow(Store.decode(Store.encode(state), "BACKWARD"))
    expect(ok(Store.versions(back, "p"))).toEqual([1, 2])
    expect(ok(Store.version(back, "q", "latest"))).toEqual(ok(Store.version(state, "q", "latest")))
    expect(ok(Store.getConfig(back, "q"))).toEqual({ compatibilityLevel: "NONE" })
    expect(ok(Store.getConfig(back, undefined))).toEqual({ compatibilityLevel: "FULL" })
    expect(ok(Store.register(back, "r", breaking)).result).toEqual({ id: 3 })
    // a level never set stays the server's default after a restart with another default
    const unset = Either.getOrThrow(Store.decode(Store.encode(registered(["p", v1])), "NONE"))
    expect(ok(Store.getConfig(unset, undefined))).toEqual({ compatibilityLevel: "NONE" })
  })

  it("decode reads files written before the format version and next id were saved", () => {
    const old = {
      schemas: [{ id: 4, schema: v1 }],
      subjects: { s: [{ version: 1, id: 4 }] },
      global: "FULL",
      configs: {}
    }
    const state = Either.getOrThrow(Store.decode(JSON.stringify(old), "BACKWARD"))
    expect(ok(Store.version(state, "s", "latest"))).toMatchObject({ id: 4 })
    expect(ok(Store.register(state, "t", v2)).result).toEqual({ id: 5 })
  })

  it("decode refuses files that are not registry state, saying why", () => {
    expect(Either.isLeft(Store.decode("{", "BACKWARD"))).toBe(true)
    expect(Either.isLeft(Store.decode(JSON.stringify({ format: 2 }), "BACKWARD"))).toBe(true)
    const valid = {
      format: 1,
      nextId: 2,
      schemas: [{ id: 1, schema: v1 }],
      subjects: { s: [{ version: 1, id: 1 }] },
      configs: {},
      global: null
    }
    expect(Either.isRight(Store.decode(JSON.stringify(valid), "BACKWARD"))).toBe(true)
    expect(Store.decode(JSON.stringify({ ...valid, subjects: { s: [{ version: 1, id: 7 }] } }), "BACKWARD")).toEqual(
      Either.left(expect.stringContaining("unknown schema 7"))
    )
    expect(Store.decode(JSON.stringify({ ...valid, configs: { s: "SIDEWAYS" } }), "BACKWARD")).toEqual(
      Either.left(expect.stringContaining("SIDEWAYS"))
    )
    const invalid = { ...valid, schemas: [{ id: 1, schema: "{\"type\":\"nope\"}" }] }
    expect(Store.decode(JSON.stringify(invalid), "BACKWARD")).toEqual(
      Either.left(expect.stringContaining("schema 1 is invalid"))
    )
  })
})
