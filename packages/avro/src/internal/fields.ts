/**
 * The fields of a record schema as the `SchemaBackend` port reports them: name, Avro type, logical type,
 * nullability, enum symbols and default.
 */
import type { SchemaBackend } from "@deimos/core"
import { type Named, resolve } from "./schemas.js"

type Def = { readonly [key: string]: unknown }

interface Description {
  readonly type: string
  readonly logicalType?: string | undefined
  readonly nullable: boolean
  readonly symbols?: ReadonlyArray<string> | undefined
}

const describe = (schema: unknown, named: ReadonlyMap<string, Named>, ns: string | undefined): Description => {
  const { json, namespace } = resolve(schema, ns, named)
  if (Array.isArray(json)) {
    const branches = json.filter((b) => b !== "null")
    const nullable = branches.length < json.length
    return branches.length === 1
      ? { ...describe(branches[0], named, namespace), nullable }
      : { type: "union", nullable }
  }
  if (json === null || (typeof json !== "string" && typeof json !== "object")) {
    return { type: "unknown", nullable: false }
  }
  const def: Def = typeof json === "string" ? { type: json } : (json as Def)
  if (typeof def.type === "object" && def.type !== null) return describe(def.type, named, namespace)
  return {
    type: String(def.type),
    logicalType: typeof def.logicalType === "string" ? def.logicalType : undefined,
    nullable: def.type === "null",
    symbols: Array.isArray(def.symbols) ? (def.symbols as ReadonlyArray<string>) : undefined
  }
}

/** The fields of a record schema (none for a schema that is not a record). */
export const fieldsOf = (
  record: Def,
  named: ReadonlyMap<string, Named>,
  namespace: string | undefined
): ReadonlyArray<SchemaBackend.SchemaField> =>
  ((record.fields as ReadonlyArray<Def> | undefined) ?? []).map((f) => {
    const d = describe(f.type, named, namespace)
    return {
      name: String(f.name),
      type: d.type,
      logicalType: d.logicalType,
      nullable: d.nullable,
      symbols: d.symbols,
      hasDefault: "default" in f,
      default: f.default
    }
  })
