/**
 * Avro schemas as JSON plus their avsc types: loading a directory of `.avsc` files (named types resolved across
 * files), looking schemas up by full name, walking the JSON for coercion and field descriptions.
 */
import avro from "avsc"
import * as fs from "node:fs"
import * as path from "node:path"

export type Json = string | { readonly [key: string]: unknown } | ReadonlyArray<unknown>

const primitives = new Set(["null", "boolean", "int", "long", "float", "double", "bytes", "string"])

export interface Named {
  readonly fullName: string
  readonly json: { readonly [key: string]: unknown }
  readonly file: string
}

/** Full name of a named type definition, given the enclosing namespace. */
export const fullNameOf = (
  def: { readonly name?: unknown; readonly namespace?: unknown },
  enclosing: string | undefined
) => {
  const name = String(def.name)
  if (name.includes(".")) return name
  const ns = typeof def.namespace === "string" ? def.namespace : enclosing
  return ns === undefined || ns === "" ? name : `${ns}.${name}`
}

const namespaceOf = (fullName: string) => {
  const dot = fullName.lastIndexOf(".")
  return dot < 0 ? undefined : fullName.slice(0, dot)
}

/** Collects every named type defined in a schema (records, enums, fixed, nested ones too). */
export const collectNamed = (schema: unknown, enclosing: string | undefined, file: string, out: Map<string, Named>) => {
  if (Array.isArray(schema)) {
    for (const s of schema) collectNamed(s, enclosing, file, out)
    return
  }
  if (typeof schema !== "object" || schema === null) return
  const def = schema as { readonly [key: string]: unknown }
  const type = def.type
  if (type === "record" || type === "error" || type === "enum" || type === "fixed") {
    const fullName = fullNameOf(def, enclosing)
    out.set(fullName, { fullName, json: def, file })
    if (Array.isArray(def.fields)) {
      for (const f of def.fields as ReadonlyArray<{ readonly type: unknown }>) {
        collectNamed(f.type, namespaceOf(fullName), file, out)
      }
    }
    return
  }
  if (type === "array") collectNamed(def.items, enclosing, file, out)
  else if (type === "map") collectNamed(def.values, enclosing, file, out)
  else if (typeof type === "object") collectNamed(type, enclosing, file, out)
}

export class SchemaDirectory {
  readonly named = new Map<string, Named>()
  private readonly types = new Map<string, avro.Type>()
  readonly registry: { [name: string]: avro.Type } = {}

  constructor(readonly dirs: ReadonlyArray<string>) {
    const files = dirs.flatMap((d) => listAvsc(d))
    const pending: Array<{ readonly file: string; readonly json: unknown }> = []
    for (const file of files) {
      const json = JSON.parse(fs.readFileSync(file, "utf8")) as unknown
      collectNamed(json, undefined, file, this.named)
      pending.push({ file, json })
    }
    // parse in passes so types referenced across files are registered before their users
    let left = pending
    for (let pass = 0; left.length > 0 && pass <= pending.length; pass++) {
      const failed: typeof left = []
      for (const p of left) {
        try {
          avro.Type.forSchema(p.json as avro.Schema, { registry: this.registry })
        } catch {
          failed.push(p)
        }
      }
      if (failed.length === left.length) {
        // report the first real error
        avro.Type.forSchema(failed[0].json as avro.Schema, { registry: this.registry })
      }
      left = failed
    }
  }

  /** The avsc type of a named schema, or undefined. */
  type(fullName: string): avro.Type | undefined {
    const cached = this.types.get(fullName)
    if (cached !== undefined) return cached
    const t = this.registry[fullName]
    if (t !== undefined) this.types.set(fullName, t)
    return t
  }

  /** The directories searched, for error messages. */
  searched(): string {
    return this.dirs.join(", ")
  }
}

const listAvsc = (dir: string): Array<string> => {
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name)
    if (e.isDirectory()) return listAvsc(full)
    return e.name.endsWith(".avsc") ? [full] : []
  }).sort()
}

/** Resolves a type reference (a name) against known named types. */
export const resolve = (
  type: unknown,
  enclosing: string | undefined,
  named: ReadonlyMap<string, Named>
): { readonly json: unknown; readonly namespace: string | undefined } => {
  if (typeof type === "string" && !primitives.has(type)) {
    const candidates = type.includes(".") ? [type] : [enclosing === undefined ? type : `${enclosing}.${type}`, type]
    for (const c of candidates) {
      const found = named.get(c)
      if (found !== undefined) return { json: found.json, namespace: namespaceOf(found.fullName) }
    }
  }
  if (typeof type === "object" && type !== null && !Array.isArray(type)) {
    const def = type as { readonly type?: unknown; readonly name?: unknown }
    if (
      (def.type === "record" || def.type === "enum" || def.type === "fixed" || def.type === "error") &&
      def.name !== undefined
    ) {
      return { json: type, namespace: namespaceOf(fullNameOf(def, enclosing)) }
    }
  }
  return { json: type, namespace: enclosing }
}
