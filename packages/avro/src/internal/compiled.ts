/**
 * The package's generated code, in one place: per-record functions built with `new Function` (as avsc builds its
 * readers and writers), for the record walks every message makes. A generic loop reads fields by a computed key
 * (`v[names[i]]`) and calls each field's function from one call site shared by every record type, both megamorphic
 * in V8; generated code reads each field by its name and calls each field's function from a call site of its own,
 * which V8 inlines. Each function below is kept because it was measured to pay (figures in its comment).
 *
 * Field names are written as JSON string literals; everything else reaches the generated code as arguments, never
 * as source text.
 */

type Fn = (value: unknown) => unknown
type RecordFn = (value: Record<string, unknown>) => unknown

/**
 * Does a record (an object) carry an undeclared field: a key outside `names` whose value is defined, here or in
 * the fields `subNames` (through `subs`, each true when its value has one)? Keys are matched with a `switch` over
 * the names (Avro names are `[A-Za-z_][A-Za-z0-9_]*`, which avsc enforces).
 *
 * Measured on bench:avro's Order (10 fields, a nested record, an array; Node 20, the shared 2-core VM): 175 ns per
 * record as a loop with a `Set` lookup per key, 51 ns generated (an avsc write of the record is about 1 µs).
 */
export const recordFinder = (
  names: ReadonlyArray<string>,
  subNames: ReadonlyArray<string>,
  subs: ReadonlyArray<(value: unknown) => boolean>
): (v: Record<string, unknown>) => boolean => {
  const keys = names.length === 0
    ? `for (const k in v) if (v[k] !== undefined) return true;`
    : `for (const k in v) { switch (k) { ${
      names.map((n) => `case ${JSON.stringify(n)}:`).join(" ")
    } continue; default: if (v[k] !== undefined) return true } }`
  const fields = subNames.map((name, i) =>
    `const x${i} = v[${
      JSON.stringify(name)
    }]; if (x${i} !== undefined && x${i} !== null && s[${i}](x${i})) return true;`
  )
  return new Function("s", `return (v) => {\n${keys}\n${fields.join("\n")}\nreturn false;\n}`)(subs) as (
    v: Record<string, unknown>
  ) => boolean
}

/** A bridge node's checks and conversions, as `structBridge` calls them. */
export interface BridgeNode {
  readonly encode: Fn
  readonly decode: Fn
  /** For checks only: the check as a JavaScript expression over the variable named `x`. */
  readonly inline?: ((x: string) => string) | undefined
}

/**
 * The Effect Schema bridge of a `Schema.Struct` with every property present (`bail` on anything else, or the
 * `encodeLoop` / `decodeLoop` given when a property is missing, as optional ones may be): primitives checked
 * inline, the other properties through their nodes, the output built as one object literal (the input itself on
 * encode when `identity`, every property needing no conversion). Encoding refuses excess properties, own and
 * inherited enumerable ones.
 *
 * Measured on bench:avro's Order: 750 ns per record as loops, 133 ns generated; checks only (`keepDates`, as the
 * typed encode runs it), 542 ns and 78 ns.
 */
export const structBridge = (options: {
  readonly names: ReadonlyArray<string>
  readonly props: ReadonlyArray<BridgeNode>
  readonly identity: boolean
  readonly bail: unknown
  readonly encodeLoop: RecordFn
  readonly decodeLoop: RecordFn
}): { readonly encodeAll: RecordFn; readonly decodeAll: RecordFn } => {
  const { identity, names, props } = options
  // `x<i>` the input property, `y<i>` the output; `p` the property nodes, `loop` the general loop
  const lines = (direction: "encode" | "decode") => {
    const body: Array<string> = []
    for (let i = 0; i < names.length; i++) {
      const key = JSON.stringify(names[i])
      body.push(`const x${i} = v[${key}];`)
      body.push(`if (x${i} === undefined && !(${key} in v)) return loop(v);`)
      const inline = props[i].inline
      if (inline !== undefined) {
        body.push(`if (!(${inline(`x${i}`)})) return bail; const y${i} = x${i};`)
      } else {
        body.push(`const y${i} = p[${i}].${direction}(x${i}); if (y${i} === bail) return bail;`)
      }
    }
    return body
  }
  const object = `{ ${names.map((name, i) => `${JSON.stringify(name)}: y${i}`).join(", ")} }`
  const excess = `for (const k in v) { if (!hasOwn.call(v, k)) return bail; switch (k) { ${
    names.map((name) => `case ${JSON.stringify(name)}:`).join(" ")
  } continue; default: return bail } }`
  const encodeBody = excess + "\n" + lines("encode").join("\n") + `\nreturn ${identity ? "v" : object};`
  const decodeBody = lines("decode").join("\n") + `\nreturn ${object};`
  const encodeAll = new Function("p", "bail", "loop", "hasOwn", `return (v) => {\n${encodeBody}\n}`)(
    props,
    options.bail,
    options.encodeLoop,
    Object.prototype.hasOwnProperty
  ) as RecordFn
  const decodeAll = new Function("p", "bail", "loop", `return (v) => {\n${decodeBody}\n}`)(
    props,
    options.bail,
    options.decodeLoop
  ) as RecordFn
  return { encodeAll, decodeAll }
}

/**
 * Copy-on-write over the fields of a record: each named field through its function (`subs`), the record itself
 * when no field changed, else a copy with the changed fields. `checks[i]`, when given, is a JavaScript expression
 * over `x` that is true when field `i` needs no call (its function would answer `x` itself).
 *
 * Measured on bench:avro's Order (a payload needing no coercion, as most do): 320 ns per record as a loop, 43 ns
 * generated.
 */
export const recordCoercion = (
  names: ReadonlyArray<string>,
  subs: ReadonlyArray<Fn>,
  checks: ReadonlyArray<((x: string) => string) | undefined>
): Fn => {
  const lines: Array<string> = []
  for (let i = 0; i < names.length; i++) {
    const key = JSON.stringify(names[i])
    const check = checks[i]
    const call = `s[${i}](x${i})`
    lines.push(`const x${i} = v[${key}];`)
    lines.push(`const y${i} = ${check === undefined ? call : `(${check(`x${i}`)}) ? x${i} : ${call}`};`)
    lines.push(`if (y${i} !== x${i}) (out ??= { ...v })[${key}] = y${i};`)
  }
  const body = `return (v) => {
if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Date) return v;
let out;
${lines.join("\n")}
return out ?? v;
}`
  return new Function("s", body)(subs) as Fn
}
