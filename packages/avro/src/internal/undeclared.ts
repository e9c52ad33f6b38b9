/**
 * Finds fields a value carries that its record schema does not declare, at any depth. avsc's writer silently drops
 * them, and its `isValid({ noUndeclaredFields })` re-checks every value; this walker visits only records (through
 * arrays, maps and unions), so the encode hot path can afford it.
 */
import type avro from "avsc"
import * as Compiled from "./compiled.js"

export type Path = ReadonlyArray<string | number>

/**
 * Returns true when `value` has an undeclared field. With `out`, collects every path instead of stopping at the
 * first one.
 */
export type Finder = (value: unknown, path: Path, out: Array<Path> | undefined) => boolean

const noPath: Path = []

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date)

const build = (type: avro.Type, memo: Map<avro.Type, { f: Finder | undefined }>): Finder | undefined => {
  const typeName = String(type.typeName)
  if (typeName === "record" || typeName === "error") {
    const known = memo.get(type)
    if (known !== undefined) return (v, p, o) => known.f!(v, p, o)
    const holder: { f: Finder | undefined } = { f: undefined }
    memo.set(type, holder)
    const fields = (type as avro.types.RecordType).fields
    const names = new Set(fields.map((f) => f.name))
    const subs: Array<readonly [string, Finder]> = []
    for (const field of fields) {
      const sub = build(field.type, memo)
      if (sub !== undefined) subs.push([field.name, sub])
    }
    const hasUndeclared = Compiled.recordFinder(
      fields.map((f) => f.name),
      subs.map(([name]) => name),
      subs.map(([, sub]) => (x: unknown) => sub(x, noPath, undefined))
    )
    holder.f = (v, p, o) => {
      if (!isObject(v)) return false
      if (o === undefined) return hasUndeclared(v)
      let found = false
      for (const k in v) {
        if (!names.has(k) && v[k] !== undefined) {
          if (o === undefined) return true
          o.push([...p, k])
          found = true
        }
      }
      for (let i = 0; i < subs.length; i++) {
        const [name, sub] = subs[i]
        const x = v[name]
        if (x !== undefined && x !== null && sub(x, o === undefined ? p : [...p, name], o)) {
          if (o === undefined) return true
          found = true
        }
      }
      return found
    }
    return holder.f
  }
  if (typeName === "array") {
    const sub = build((type as avro.types.ArrayType).itemsType, memo)
    if (sub === undefined) return undefined
    return (v, p, o) => {
      if (!Array.isArray(v)) return false
      let found = false
      for (let i = 0; i < v.length; i++) {
        if (sub(v[i], o === undefined ? p : [...p, i], o)) {
          if (o === undefined) return true
          found = true
        }
      }
      return found
    }
  }
  if (typeName === "map") {
    const sub = build((type as avro.types.MapType).valuesType as avro.Type, memo)
    if (sub === undefined) return undefined
    return (v, p, o) => {
      if (!isObject(v)) return false
      let found = false
      for (const k in v) {
        if (sub(v[k], o === undefined ? p : [...p, k], o)) {
          if (o === undefined) return true
          found = true
        }
      }
      return found
    }
  }
  if (typeName === "union:wrapped") {
    // `{ "<branch name>": value }`
    const branches = new Map<string, Finder>()
    for (const t of (type as avro.types.WrappedUnionType).types) {
      const sub = build(t, memo)
      if (sub !== undefined) branches.set(String((t as { readonly branchName?: string }).branchName), sub)
    }
    if (branches.size === 0) return undefined
    return (v, p, o) => {
      if (!isObject(v)) return false
      for (const k in v) {
        const sub = branches.get(k)
        if (sub !== undefined && v[k] !== null && sub(v[k], o === undefined ? p : [...p, k], o)) return true
      }
      return false
    }
  }
  if (typeName === "union:unwrapped") {
    // an unwrapped union has at most one object-like branch (record or map) and one array branch
    let objectBranch: Finder | undefined
    let arrayBranch: Finder | undefined
    for (const t of (type as avro.types.UnwrappedUnionType).types) {
      const name = String(t.typeName)
      const sub = build(t, memo)
      if (sub === undefined) continue
      if (name === "array") arrayBranch = sub
      else objectBranch ??= sub
    }
    if (objectBranch === undefined && arrayBranch === undefined) return undefined
    return (v, p, o) =>
      Array.isArray(v)
        ? arrayBranch !== undefined && arrayBranch(v, p, o)
        : objectBranch !== undefined && objectBranch(v, p, o)
  }
  if (typeName.startsWith("logical:")) return build((type as avro.types.LogicalType).underlyingType, memo)
  return undefined
}

/** The finder of a type, or undefined when the type holds no record. */
export const finder = (type: avro.Type): Finder | undefined => build(type, new Map())
