/**
 * Codegen: every `.avsc` file becomes a TypeScript module with, for each record and enum it defines, a type, an
 * Effect `Schema` (its encoded side is what the Avro backends read and write) and, for records, a schema handle
 * carrying the Avro schema, so `Producer.make({ schema: Widget })` infers the payload type.
 *
 * Type mapping: int/long → `number` (`Schema.Int`), float/double → `number`, string → `string`, boolean,
 * bytes/fixed → `Uint8Array`, null; `timestamp-millis` → `Date` (`Schema.DateFromNumber`); `timestamp-micros` →
 * `number` of microseconds (exact, Deimos #97); `date` → `number` of days; enums → string literal unions; arrays,
 * maps (`Record<string, T>`), unions (`T | null` → `Schema.NullOr`). Fields with a default are optional; the
 * backends fill the default. Records with an `id` field (the conventional key) get `Handle.tombstone(id)`
 * (Deimos #155).
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { collectNamed, fullNameOf, type Named } from "./internal/schemas.js"

type Def = { readonly [key: string]: unknown }

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/
const key = (name: string) => identifier.test(name) ? name : JSON.stringify(name)
const shortName = (fullName: string) => fullName.split(".").pop()!
const namespaceOf = (fullName: string) =>
  fullName.includes(".") ? fullName.slice(0, fullName.lastIndexOf(".")) : undefined

interface Context {
  readonly named: ReadonlyMap<string, Named>
  readonly file: string
  /** Named types used from other files: short name → module. */
  readonly imports: Map<string, string>
}

const refName = (name: string, ns: string | undefined, ctx: Context): string | undefined => {
  const candidates = name.includes(".") ? [name] : [ns === undefined ? name : `${ns}.${name}`, name]
  for (const c of candidates) {
    const found = ctx.named.get(c)
    if (found !== undefined) {
      if (found.file !== ctx.file) ctx.imports.set(shortName(found.fullName), path.basename(found.file, ".avsc"))
      return shortName(found.fullName)
    }
  }
  return undefined
}

/** The Effect Schema expression of an Avro type. */
const schemaOf = (type: unknown, ns: string | undefined, ctx: Context): string => {
  if (Array.isArray(type)) {
    const branches = type.filter((b) => b !== "null")
    const nullable = branches.length < type.length
    const inner = branches.length === 1
      ? schemaOf(branches[0], ns, ctx)
      : `Schema.Union(${branches.map((b) => schemaOf(b, ns, ctx)).join(", ")})`
    return nullable ? `Schema.NullOr(${inner})` : inner
  }
  if (typeof type === "string") {
    switch (type) {
      case "null":
        return "Schema.Null"
      case "boolean":
        return "Schema.Boolean"
      case "int":
      case "long":
        return "Schema.Int"
      case "float":
      case "double":
        return "Schema.Number"
      case "string":
        return "Schema.String"
      case "bytes":
        return "Schema.Uint8ArrayFromSelf"
      default: {
        const ref = refName(type, ns, ctx)
        if (ref === undefined) throw new Error(`Unknown type ${type} in ${ctx.file}`)
        return `${ref}Schema`
      }
    }
  }
  const def = type as Def
  if (def.logicalType === "timestamp-millis" || def.logicalType === "local-timestamp-millis") {
    return "Schema.DateFromNumber"
  }
  switch (def.type) {
    case "record":
    case "error":
    case "enum":
    case "fixed":
      return `${shortName(fullNameOf(def, ns))}Schema`
    case "array":
      return `Schema.Array(${schemaOf(def.items, ns, ctx)})`
    case "map":
      return `Schema.Record({ key: Schema.String, value: ${schemaOf(def.values, ns, ctx)} })`
    default:
      return schemaOf(def.type, ns, ctx)
  }
}

/**
 * The Avro schema with every named type it references from elsewhere written out at its first use, so the handle's
 * schema parses on its own.
 */
const inline = (
  schema: unknown,
  ns: string | undefined,
  named: ReadonlyMap<string, Named>,
  defined: Set<string>
): unknown => {
  if (Array.isArray(schema)) return schema.map((s) => inline(s, ns, named, defined))
  if (typeof schema === "string") {
    const candidates = schema.includes(".") ? [schema] : [ns === undefined ? schema : `${ns}.${schema}`, schema]
    for (const c of candidates) {
      const found = named.get(c)
      if (found !== undefined) {
        if (defined.has(found.fullName)) return found.fullName
        defined.add(found.fullName)
        return inline({ ...found.json, name: found.fullName }, namespaceOf(found.fullName), named, defined)
      }
    }
    return schema
  }
  if (typeof schema !== "object" || schema === null) return schema
  const def = schema as Def
  if (def.type === "record" || def.type === "error") {
    const fullName = fullNameOf(def, ns)
    defined.add(fullName)
    const inner = namespaceOf(fullName)
    return {
      ...def,
      fields: ((def.fields as ReadonlyArray<Def>) ?? []).map((f) => ({
        ...f,
        type: inline(f.type, inner, named, defined)
      }))
    }
  }
  if (def.type === "enum" || def.type === "fixed") {
    defined.add(fullNameOf(def, ns))
    return def
  }
  if (def.type === "array") return { ...def, items: inline(def.items, ns, named, defined) }
  if (def.type === "map") return { ...def, values: inline(def.values, ns, named, defined) }
  if (typeof def.type === "object" || Array.isArray(def.type)) {
    return { ...def, type: inline(def.type, ns, named, defined) }
  }
  return def
}

/** Definitions for every named type of a file, dependencies first. */
const definitions = (schema: unknown, ns: string | undefined, ctx: Context, out: Array<string>, seen: Set<string>) => {
  if (Array.isArray(schema)) {
    for (const s of schema) definitions(s, ns, ctx, out, seen)
    return
  }
  if (typeof schema !== "object" || schema === null) return
  const def = schema as Def
  if (def.type === "array") return definitions(def.items, ns, ctx, out, seen)
  if (def.type === "map") return definitions(def.values, ns, ctx, out, seen)
  if (typeof def.type === "object") return definitions(def.type, ns, ctx, out, seen)
  if (def.type !== "record" && def.type !== "error" && def.type !== "enum" && def.type !== "fixed") return
  const fullName = fullNameOf(def, ns)
  if (seen.has(fullName)) return
  seen.add(fullName)
  const name = shortName(fullName)
  const doc = typeof def.doc === "string" ? `/** ${def.doc} */\n` : ""
  if (def.type === "enum") {
    const symbols = (def.symbols as ReadonlyArray<string>).map((s) => JSON.stringify(s)).join(", ")
    out.push(
      `${doc}export const ${name}Schema = Schema.Literal(${symbols})\nexport type ${name} = typeof ${name}Schema.Type\n`
    )
    return
  }
  if (def.type === "fixed") {
    out.push(`${doc}export const ${name}Schema = Schema.Uint8ArrayFromSelf\nexport type ${name} = Uint8Array\n`)
    return
  }
  const inner = namespaceOf(fullName)
  const fields = (def.fields as ReadonlyArray<Def>) ?? []
  for (const f of fields) definitions(f.type, inner, ctx, out, seen)
  const props = fields.map((f) => {
    const s = schemaOf(f.type, inner, ctx)
    const fdoc = typeof f.doc === "string" ? `  /** ${f.doc} */\n` : ""
    return `${fdoc}  ${key(String(f.name))}: ${"default" in f ? `Schema.optional(${s})` : s}`
  })
  out.push(
    `${doc}export const ${name}Schema = Schema.Struct({\n${props.join(",\n")}\n})\n` +
      `export interface ${name} extends Schema.Schema.Type<typeof ${name}Schema> {}\n`
  )
  const avro = JSON.stringify(inline(def, inner, ctx.named, new Set([fullName])), null, 2)
  const handle = `SchemaRef.make({\n  name: ${JSON.stringify(name)},\n  namespace: ${
    JSON.stringify(inner)
  },\n  schema: ${name}Schema,\n  avro: ${avro.split("\n").join("\n  ")}\n})`
  const keyField = fields.find((f) => f.name === "id")
  out.push(
    keyField === undefined
      ? `/** The schema handle of ${fullName}: give it to \`Producer.make\` / \`Consumer.make\` as \`schema\`. */\n` +
        `export const ${name} = ${handle}\n`
      : `/**\n * The schema handle of ${fullName}: give it to \`Producer.make\` / \`Consumer.make\` as \`schema\`;\n` +
        ` * \`${name}.tombstone(id)\` deletes the ${name} keyed by \`id\` (Deimos #155).\n */\n` +
        `export const ${name} = Object.assign(${handle}, {\n` +
        `  /** A tombstone for the ${name} keyed by \`id\`: publishing it sends the key with a null value. */\n` +
        `  tombstone: (id: ${name}["id"]): Tombstone.Tombstone<${name}["id"]> => Tombstone.make(id)\n})\n`
  )
}

/**
 * Generates the module of one `.avsc` file. `named` holds every named type of the schema set (for references across
 * files).
 *
 * @since 0.1.0
 */
export const generateModule = (file: string, schema: unknown, named: ReadonlyMap<string, Named>): string => {
  const ctx: Context = { named, file, imports: new Map() }
  const out: Array<string> = []
  definitions(schema, undefined, ctx, out, new Set())
  const own = new Set([...named.values()].filter((n) => n.file === file).map((n) => shortName(n.fullName)))
  const imports = [...ctx.imports].filter(([n]) => !own.has(n)).sort(([a], [b]) => a.localeCompare(b))
  const body = out.join("\n")
  const core = ["SchemaRef", ...(body.includes("Tombstone.") ? ["Tombstone"] : [])]
  return [
    `// Generated by \`deimos codegen\` from ${path.basename(file)}. Do not edit.`,
    `import { ${core.join(", ")} } from "@deimos/core"`,
    `import * as Schema from "effect/Schema"`,
    ...imports.map(([n, module]) => `import { ${n}Schema } from "./${module}.js"`),
    "",
    body
  ].join("\n")
}

/**
 * Generates one module per `.avsc` file under `schemasDir` into `outDir` (flat, named after the files), plus an
 * `index.ts`. Returns the files written.
 *
 * @since 0.1.0
 */
export const generateDirectory = (schemasDir: string, outDir: string): ReadonlyArray<string> => {
  const files: Array<string> = []
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name)
      if (e.isDirectory()) walk(full)
      else if (e.name.endsWith(".avsc")) files.push(full)
    }
  }
  walk(schemasDir)
  files.sort()
  const named = new Map<string, Named>()
  const parsed = files.map((file) => {
    const json = JSON.parse(fs.readFileSync(file, "utf8")) as unknown
    collectNamed(json, undefined, file, named)
    return { file, json }
  })
  fs.mkdirSync(outDir, { recursive: true })
  const written: Array<string> = []
  for (const { file, json } of parsed) {
    const target = path.join(outDir, `${path.basename(file, ".avsc")}.ts`)
    fs.writeFileSync(target, generateModule(file, json, named))
    written.push(target)
  }
  const index = path.join(outDir, "index.ts")
  fs.writeFileSync(
    index,
    `// Generated by \`deimos codegen\`. Do not edit.\n${
      parsed.map(({ file }) => `export * from "./${path.basename(file, ".avsc")}.js"`).join("\n")
    }\n`
  )
  written.push(index)
  return written
}
