/**
 * The core speaks `Uint8Array`; avsc's `bytes` and `fixed` accept only `Buffer`. This compiles, per avsc type, a
 * function that turns every `Uint8Array` at a bytes or fixed position into a `Buffer` view of the same memory (no
 * copy), copying the records, arrays and maps on the way only when something changed. Types without bytes or fixed
 * get no function at all, so their hot path does not pay for it.
 */
import type avro from "avsc"

export type ToBuffers = (value: unknown) => unknown

/** A `Buffer` view of bytes, without copying. */
export const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

const toBuffer = (v: unknown): unknown => v instanceof Uint8Array ? asBuffer(v) : v

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)

const build = (
  type: avro.Type,
  memo: Map<avro.Type, { f: ToBuffers | undefined; done: boolean }>
): ToBuffers | undefined => {
  const typeName = String(type.typeName)
  switch (typeName) {
    case "bytes":
    case "fixed":
      return toBuffer
    case "record":
    case "error": {
      const known = memo.get(type)
      if (known !== undefined) {
        // a recursive record still being compiled: look its function up when called
        return known.done ? known.f : (v) => known.f === undefined ? v : known.f(v)
      }
      const holder: { f: ToBuffers | undefined; done: boolean } = { f: undefined, done: false }
      memo.set(type, holder)
      const subs: Array<readonly [string, ToBuffers]> = []
      for (const field of (type as avro.types.RecordType).fields) {
        const sub = build(field.type, memo)
        if (sub !== undefined) subs.push([field.name, sub])
      }
      holder.done = true
      if (subs.length === 0) return undefined
      holder.f = (v) => {
        if (!isObject(v)) return v
        let out: Record<string, unknown> | undefined
        for (let i = 0; i < subs.length; i++) {
          const [name, sub] = subs[i]
          const x = v[name]
          if (x === undefined || x === null) continue
          const y = sub(x)
          if (y !== x) (out ??= { ...v })[name] = y
        }
        return out ?? v
      }
      return holder.f
    }
    case "array": {
      const sub = build((type as avro.types.ArrayType).itemsType, memo)
      if (sub === undefined) return undefined
      return (v) => {
        if (!Array.isArray(v)) return v
        let out: Array<unknown> | undefined
        for (let i = 0; i < v.length; i++) {
          const y = sub(v[i])
          if (y !== v[i]) (out ??= [...v])[i] = y
        }
        return out ?? v
      }
    }
    case "map": {
      const sub = build((type as avro.types.MapType).valuesType as avro.Type, memo)
      if (sub === undefined) return undefined
      return (v) => {
        if (!isObject(v)) return v
        let out: Record<string, unknown> | undefined
        for (const k in v) {
          const y = sub(v[k])
          if (y !== v[k]) (out ??= { ...v })[k] = y
        }
        return out ?? v
      }
    }
    case "union:unwrapped": {
      const subs = (type as avro.types.UnwrappedUnionType).types.map((t) => build(t, memo))
        .filter((s): s is ToBuffers => s !== undefined)
      if (subs.length === 0) return undefined
      // at most one branch holds bytes/fixed directly; records, arrays and maps convert inside themselves
      return (v) => {
        for (const sub of subs) {
          const y = sub(v)
          if (y !== v) return y
        }
        return v
      }
    }
    case "union:wrapped": {
      const branches = new Map<string, ToBuffers>()
      for (const t of (type as avro.types.WrappedUnionType).types) {
        const sub = build(t, memo)
        if (sub !== undefined) branches.set(String((t as { readonly branchName?: string }).branchName), sub)
      }
      if (branches.size === 0) return undefined
      return (v) => {
        if (!isObject(v)) return v
        for (const k in v) {
          const sub = branches.get(k)
          if (sub === undefined) continue
          const y = sub(v[k])
          if (y !== v[k]) return { ...v, [k]: y }
        }
        return v
      }
    }
    default:
      return typeName.startsWith("logical:")
        ? build((type as avro.types.LogicalType).underlyingType, memo)
        : undefined
  }
}

/** The conversion of a type, or undefined when it holds no bytes or fixed. */
export const toBuffers = (type: avro.Type): ToBuffers | undefined => build(type, new Map())
