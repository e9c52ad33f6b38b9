/**
 * Codegen: every `.avsc` file becomes a TypeScript module with, for each record and enum it defines, a type, an
 * Effect `Schema` (its encoded side is the wire value the Avro backends read and write) and, for records, a schema
 * handle carrying the Avro schema, so `Producer.make({ schema: Widget })` infers the payload type.
 *
 * Type mapping: int/long → `number` (`Schema.Int`, the safe integers: the backends keep longs exact over that range and
 * refuse the rest), float/double → `number`, string → `string`, boolean, bytes/fixed → `Uint8Array` (the backends hand
 * avsc `Buffer`s), null; `timestamp-millis` → `Date` (`Schema.DateFromNumber`); `timestamp-micros` → `number` of
 * microseconds (exact, Deimos #97); `date` → `number` of days; enums → string literal unions; arrays, maps
 * (`Record<string, T>`), unions: with null → `Schema.NullOr`; unions avsc reads unwrapped (at most one branch per kind
 * of JavaScript value: `["null", "string", "long"]`) → `Schema.Union` of the branches; unions avsc wraps (two records,
 * a string and an enum, an int and a double) → the wrapped form `{ "<branch name>": value }` (full names for named
 * types), the one Avro's JSON encoding and avsc use, which tells the branches apart. Recursive records → hand-written
 * interfaces and `Schema.suspend`. Fields with a default are optional; the backends fill the default.
 *
 * Names: a type is exported under its short name (`Widget`, `WidgetSchema`, `WidgetEncoded`), or, when two
 * namespaces define the same short name (or it is `Schema`, `SchemaRef` or `Tombstone`), under its full name in
 * PascalCase (`ComAcmeUser`). Modules are named after their files, with the directories (`a.User.ts`) when two
 * files share a name.
 *
 * Tombstones (Deimos #155): the handle of a keyed record gets `tombstone(key)`, typed by its key: records with the
 * `keyField` field (`--key-field id`), or the records named in `keys`: `{ Order: { field: "order_id" } }`
 * (`--key Order=order_id`) or `{ Widget: { schema: "com.example.WidgetKey" } }` (`--key-schema
 * Widget=com.example.WidgetKey`), the key then being a `WidgetKey`.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { branchNameOf, collectNamed, fullNameOf, isWrappedUnion, type Named } from "./internal/schemas.js"

type Def = { readonly [key: string]: unknown }

/**
 * @since 0.1.0
 */
export interface Options {
  /** Records with a field of this name are keyed by it: their handles get `tombstone(key)`. @default none */
  readonly keyField?: string | undefined
  /**
   * The key of named records (full or short name): one of their fields, or a key record of its own (full or short
   * name). Wins over `keyField`. @default {}
   */
  readonly keys?:
    | { readonly [record: string]: { readonly field: string } | { readonly schema: string } }
    | undefined
}

/**
 * One generated file.
 *
 * @since 0.1.0
 */
export interface GeneratedFile {
  /** Relative to the output directory. */
  readonly path: string
  readonly content: string
}

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/
const key = (name: string) => identifier.test(name) ? name : JSON.stringify(name)
const shortName = (fullName: string) => fullName.split(".").pop()!
const namespaceOf = (fullName: string) =>
  fullName.includes(".") ? fullName.slice(0, fullName.lastIndexOf(".")) : undefined
const docComment = (doc: unknown, indent = "") =>
  typeof doc === "string" ? `${indent}/** ${doc.replace(/\*\//g, "*\\/").replace(/\n/g, " ")} */\n` : ""
const pascal = (fullName: string) => fullName.split(".").map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join("")

const reserved = new Set(["Schema", "SchemaRef", "Tombstone"])

/** What the modules of one schema set share: the named types, their identifiers and modules. */
interface Plan {
  readonly named: ReadonlyMap<string, Named>
  /** Full name → exported identifier. */
  readonly idents: ReadonlyMap<string, string>
  /** `.avsc` file → module name (without `.ts`). */
  readonly modules: ReadonlyMap<string, string>
  readonly options: Options
}

interface Context {
  readonly plan: Plan
  readonly file: string
  /** Value imports: module → names. */
  readonly imports: Map<string, Set<string>>
  /** Type-only imports: module → names. */
  readonly typeImports: Map<string, Set<string>>
  /** Records of this file whose definition is being written (a reference to one is recursive). */
  readonly inProgress: Set<string>
  /** Records referenced recursively: written with interfaces of their own. */
  readonly recursive: Set<string>
}

const lookup = (name: string, ns: string | undefined, ctx: Context): Named | undefined => {
  const candidates = name.includes(".") ? [name] : [ns === undefined ? name : `${ns}.${name}`, name]
  for (const c of candidates) {
    const found = ctx.plan.named.get(c)
    if (found !== undefined) return found
  }
  return undefined
}

const addImport = (into: Map<string, Set<string>>, module: string, name: string) => {
  let names = into.get(module)
  if (names === undefined) into.set(module, names = new Set())
  names.add(name)
}

const identOf = (fullName: string, ctx: Context) => ctx.plan.idents.get(fullName) ?? shortName(fullName)

/** A named type used from elsewhere: its Schema (imported when defined in another file). */
const schemaRef = (found: Named, ctx: Context): string => {
  const ident = identOf(found.fullName, ctx)
  const def = found.json
  const isRecord = def.type === "record" || def.type === "error"
  if (found.file !== ctx.file) {
    addImport(ctx.imports, ctx.plan.modules.get(found.file)!, `${ident}Schema`)
    return `${ident}Schema`
  }
  if (isRecord && ctx.inProgress.has(found.fullName)) {
    ctx.recursive.add(found.fullName)
    return `Schema.suspend((): Schema.Schema<${ident}, ${ident}Encoded> => ${ident}Schema)`
  }
  return `${ident}Schema`
}

/** A named type used in a hand-written interface: its type (imported as a type when defined elsewhere). */
const typeRef = (found: Named, side: "Type" | "Encoded", ctx: Context): string => {
  const ident = identOf(found.fullName, ctx)
  const isRecord = found.json.type === "record" || found.json.type === "error"
  const name = isRecord && side === "Encoded" ? `${ident}Encoded` : ident
  if (found.file !== ctx.file) addImport(ctx.typeImports, ctx.plan.modules.get(found.file)!, name)
  return name
}

const timestampMillis = (def: Def) =>
  def.logicalType === "timestamp-millis" || def.logicalType === "local-timestamp-millis"

/** The Effect Schema expression of an Avro type. */
const schemaOf = (type: unknown, ns: string | undefined, ctx: Context): string => {
  if (Array.isArray(type)) {
    const branches = type.filter((b) => b !== "null")
    const nullable = branches.length < type.length
    let inner: string
    if (branches.length === 1) inner = schemaOf(branches[0], ns, ctx)
    else if (isWrappedUnion(branches, ns, ctx.plan.named)) {
      inner = `Schema.Union(${
        branches.map((b) =>
          `Schema.Struct({ ${JSON.stringify(branchNameOf(b, ns, ctx.plan.named))}: ${schemaOf(b, ns, ctx)} })`
        ).join(", ")
      })`
    } else inner = `Schema.Union(${branches.map((b) => schemaOf(b, ns, ctx)).join(", ")})`
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
        const found = lookup(type, ns, ctx)
        if (found === undefined) throw new Error(`Unknown type ${type} in ${ctx.file}`)
        return schemaRef(found, ctx)
      }
    }
  }
  const def = type as Def
  if (timestampMillis(def) && (def.type === "long" || def.type === "int")) return "Schema.DateFromNumber"
  switch (def.type) {
    case "record":
    case "error":
    case "enum":
    case "fixed":
      return `${identOf(fullNameOf(def, ns), ctx)}Schema`
    case "array":
      return `Schema.Array(${schemaOf(def.items, ns, ctx)})`
    case "map":
      return `Schema.Record({ key: Schema.String, value: ${schemaOf(def.values, ns, ctx)} })`
    default:
      return schemaOf(def.type, ns, ctx)
  }
}

/** The TypeScript type of an Avro type, on the type side or the encoded side (for recursive records). */
const typeOf = (type: unknown, ns: string | undefined, side: "Type" | "Encoded", ctx: Context): string => {
  if (Array.isArray(type)) {
    const branches = type.filter((b) => b !== "null")
    const nullable = branches.length < type.length
    const wrapped = branches.length > 1 && isWrappedUnion(branches, ns, ctx.plan.named)
    const parts = branches.map((b) =>
      wrapped
        ? `{ readonly ${JSON.stringify(branchNameOf(b, ns, ctx.plan.named))}: ${typeOf(b, ns, side, ctx)} }`
        : typeOf(b, ns, side, ctx)
    )
    if (nullable) parts.push("null")
    return parts.join(" | ")
  }
  if (typeof type === "string") {
    switch (type) {
      case "null":
        return "null"
      case "boolean":
        return "boolean"
      case "int":
      case "long":
      case "float":
      case "double":
        return "number"
      case "string":
        return "string"
      case "bytes":
        return "Uint8Array"
      default: {
        const found = lookup(type, ns, ctx)
        if (found === undefined) throw new Error(`Unknown type ${type} in ${ctx.file}`)
        return typeRef(found, side, ctx)
      }
    }
  }
  const def = type as Def
  if (timestampMillis(def) && (def.type === "long" || def.type === "int")) return side === "Type" ? "Date" : "number"
  switch (def.type) {
    case "record":
    case "error":
    case "enum":
    case "fixed": {
      const found = ctx.plan.named.get(fullNameOf(def, ns))!
      return typeRef(found, side, ctx)
    }
    case "array":
      return `ReadonlyArray<${typeOf(def.items, ns, side, ctx)}>`
    case "map":
      return `{ readonly [x: string]: ${typeOf(def.values, ns, side, ctx)} }`
    default:
      return typeOf(def.type, ns, side, ctx)
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

/** The key of a record, from the options: a field of it, a key record, or none. */
const keyOf = (
  fullName: string,
  fields: ReadonlyArray<Def>,
  ctx: Context
): { readonly field: string } | { readonly schema: Named } | undefined => {
  const keys = ctx.plan.options.keys ?? {}
  const configured = keys[fullName] ?? keys[shortName(fullName)]
  if (configured !== undefined) {
    if ("field" in configured) {
      if (!fields.some((f) => f.name === configured.field)) {
        throw new Error(`Key field "${configured.field}" is not a field of ${fullName} (${ctx.file})`)
      }
      return configured
    }
    const schema = ctx.plan.named.get(configured.schema) ??
      [...ctx.plan.named.values()].find((n) => shortName(n.fullName) === configured.schema)
    if (schema === undefined || (schema.json.type !== "record" && schema.json.type !== "error")) {
      throw new Error(`Key schema ${configured.schema} of ${fullName} is not a record of the schema set`)
    }
    return { schema }
  }
  const keyField = ctx.plan.options.keyField
  return keyField !== undefined && fields.some((f) => f.name === keyField) ? { field: keyField } : undefined
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
  const name = identOf(fullName, ctx)
  const doc = docComment(def.doc)
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
  ctx.inProgress.add(fullName)
  for (const f of fields) definitions(f.type, inner, ctx, out, seen)
  const props = fields.map((f) => {
    const s = schemaOf(f.type, inner, ctx)
    return `${docComment(f.doc, "  ")}  ${key(String(f.name))}: ${"default" in f ? `Schema.optional(${s})` : s}`
  })
  ctx.inProgress.delete(fullName)
  const struct = `Schema.Struct({\n${props.join(",\n")}\n})`
  if (ctx.recursive.has(fullName)) {
    // a recursive record: its types are written out, so the Schema can refer to itself through `Schema.suspend`
    const members = (side: "Type" | "Encoded") =>
      fields.map((f) =>
        `  readonly ${key(String(f.name))}${"default" in f ? "?" : ""}: ${typeOf(f.type, inner, side, ctx)}${
          "default" in f ? " | undefined" : ""
        }`
      ).join("\n")
    out.push(
      `${doc}export interface ${name} {\n${members("Type")}\n}\n` +
        `/** The wire form of ${name}. */\nexport interface ${name}Encoded {\n${members("Encoded")}\n}\n` +
        `export const ${name}Schema: Schema.Schema<${name}, ${name}Encoded> = ${struct}\n`
    )
  } else {
    out.push(
      `${doc}export const ${name}Schema = ${struct}\n` +
        `export interface ${name} extends Schema.Schema.Type<typeof ${name}Schema> {}\n` +
        `/** The wire form of ${name}. */\n` +
        `export interface ${name}Encoded extends Schema.Schema.Encoded<typeof ${name}Schema> {}\n`
    )
  }
  // the handle's Avro schema names its namespace, so a nested record's handle keeps it
  const { name: _name, namespace: _namespace, type: _type, ...rest } = def
  const avroJson = inline(
    { type: def.type, name: shortName(fullName), ...(inner === undefined ? {} : { namespace: inner }), ...rest },
    inner,
    ctx.plan.named,
    new Set([fullName])
  )
  const avro = JSON.stringify(avroJson, null, 2)
  const handle = `SchemaRef.make({\n  name: ${JSON.stringify(shortName(fullName))},\n  namespace: ${
    JSON.stringify(inner)
  },\n  schema: ${name}Schema,\n  avro: ${avro.split("\n").join("\n  ")}\n})`
  const keyed = keyOf(fullName, fields, ctx)
  const use = `give it to \`Producer.make\` / \`Consumer.make\` as \`schema\``
  if (keyed === undefined) {
    out.push(`/** The schema handle of ${fullName}: ${use}. */\nexport const ${name} = ${handle}\n`)
    return
  }
  const [keyType, keyDoc] = "field" in keyed
    ? [`${name}[${JSON.stringify(keyed.field)}]`, `its \`${keyed.field}\``]
    : [typeRef(keyed.schema, "Type", ctx), `a key of type \`${identOf(keyed.schema.fullName, ctx)}\``]
  out.push(
    `/**\n * The schema handle of ${fullName}: ${use};\n` +
      ` * \`${name}.tombstone(key)\` deletes the ${name} keyed by ${keyDoc} (Deimos #155).\n */\n` +
      `export const ${name} = Object.assign(${handle}, {\n` +
      `  /** A tombstone for the ${name} keyed by \`key\`: publishing it sends the key with a null value. */\n` +
      `  tombstone: (key: ${keyType}): Tombstone.Tombstone<${keyType}> => Tombstone.make(key)\n})\n`
  )
}

const importLine = (
  module: string,
  values: ReadonlySet<string> | undefined,
  types: ReadonlySet<string> | undefined
) => {
  const names = [
    ...[...(types ?? [])].filter((t) => !values?.has(t)).map((t) => ({ name: t, type: true })),
    ...[...(values ?? [])].map((v) => ({ name: v, type: false }))
  ].sort((a, b) => a.name.localeCompare(b.name))
  const onlyTypes = names.every((n) => n.type)
  return `import ${onlyTypes ? "type " : ""}{ ${
    names.map((n) => n.type && !onlyTypes ? `type ${n.name}` : n.name).join(", ")
  } } from "./${module}.js"`
}

const generateModule = (
  file: string,
  schema: unknown,
  plan: Plan
): { readonly content: string; readonly dependsOn: ReadonlySet<string> } => {
  const ctx: Context = {
    plan,
    file,
    imports: new Map(),
    typeImports: new Map(),
    inProgress: new Set(),
    recursive: new Set()
  }
  // one pass: a recursive reference is met while its record's fields are written, before the record itself
  const out: Array<string> = []
  definitions(schema, undefined, ctx, out, new Set())
  const body = out.join("\n")
  const core = [
    ...(body.includes("SchemaRef.") ? ["SchemaRef"] : []),
    ...(body.includes("Tombstone.") ? ["Tombstone"] : [])
  ]
  const modules = [...new Set([...ctx.imports.keys(), ...ctx.typeImports.keys()])].sort()
  const content = [
    `// Generated by \`deimos codegen\` from ${path.basename(file)}. Do not edit.`,
    ...(core.length === 0 ? [] : [`import { ${core.join(", ")} } from "@deimos/core"`]),
    `import * as Schema from "effect/Schema"`,
    ...modules.map((m) => importLine(m, ctx.imports.get(m), ctx.typeImports.get(m))),
    "",
    body
  ].join("\n")
  return { content, dependsOn: new Set(ctx.imports.keys()) }
}

const listAvsc = (dir: string): Array<string> => {
  const files: Array<string> = []
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name)
      if (e.isDirectory()) walk(full)
      else if (e.name.endsWith(".avsc")) files.push(full)
    }
  }
  walk(dir)
  return files.sort()
}

/** A cycle of value imports between modules, if any (ES modules importing each other's Schemas fail at load). */
const findCycle = (graph: ReadonlyMap<string, ReadonlySet<string>>): ReadonlyArray<string> | undefined => {
  const state = new Map<string, "visiting" | "done">()
  const stack: Array<string> = []
  const visit = (m: string): ReadonlyArray<string> | undefined => {
    if (state.get(m) === "done") return undefined
    if (state.get(m) === "visiting") return [...stack.slice(stack.indexOf(m)), m]
    state.set(m, "visiting")
    stack.push(m)
    for (const d of graph.get(m) ?? []) {
      const cycle = visit(d)
      if (cycle !== undefined) return cycle
    }
    stack.pop()
    state.set(m, "done")
    return undefined
  }
  for (const m of graph.keys()) {
    const cycle = visit(m)
    if (cycle !== undefined) return cycle
  }
  return undefined
}

/**
 * Generates one module per `.avsc` file under `schemasDir` (flat, named after the files), plus an `index.ts`,
 * without writing them. Throws when a file is not valid JSON, a type is defined twice or unknown, a key option
 * names no record or field, or files reference each other in a cycle.
 *
 * @since 0.1.0
 */
export const generate = (schemasDir: string, options: Options = {}): ReadonlyArray<GeneratedFile> => {
  const files = listAvsc(schemasDir)
  const named = new Map<string, Named>()
  const parsed = files.map((file) => {
    const json = JSON.parse(fs.readFileSync(file, "utf8")) as unknown
    const own = new Map<string, Named>()
    collectNamed(json, undefined, file, own)
    for (const [n, def] of own) {
      const other = named.get(n)
      if (other !== undefined) throw new Error(`${n} is defined twice: in ${other.file} and in ${file}`)
      named.set(n, def)
    }
    return { file, json }
  })
  // identifiers: the short name, unless another namespace uses it too or it would shadow an import
  const byShort = new Map<string, number>()
  for (const n of named.keys()) byShort.set(shortName(n), (byShort.get(shortName(n)) ?? 0) + 1)
  const idents = new Map<string, string>()
  const owners = new Map<string, string>()
  for (const n of named.keys()) {
    const short = shortName(n)
    const ident = byShort.get(short) === 1 && !reserved.has(short) ? short : pascal(n)
    const owner = owners.get(ident)
    if (owner !== undefined) throw new Error(`${owner} and ${n} would both be exported as ${ident}`)
    owners.set(ident, n)
    idents.set(n, ident)
  }
  // modules: the file's name, with its directories when two files share one
  const byBase = new Map<string, number>()
  for (const f of files) byBase.set(path.basename(f, ".avsc"), (byBase.get(path.basename(f, ".avsc")) ?? 0) + 1)
  const modules = new Map<string, string>()
  for (const f of files) {
    const base = path.basename(f, ".avsc")
    modules.set(
      f,
      byBase.get(base) === 1 ? base : path.relative(schemasDir, f).replace(/\.avsc$/, "").split(path.sep).join(".")
    )
  }
  const plan: Plan = { named, idents, modules, options }
  for (const record of Object.keys(options.keys ?? {})) {
    const found = named.get(record) ?? [...named.values()].find((n) => shortName(n.fullName) === record)
    if (found === undefined) throw new Error(`The key option names ${record}, which no .avsc file defines`)
  }
  const out: Array<GeneratedFile> = []
  const graph = new Map<string, ReadonlySet<string>>()
  for (const { file, json } of parsed) {
    const module = modules.get(file)!
    const { content, dependsOn } = generateModule(file, json, plan)
    graph.set(module, dependsOn)
    out.push({ path: `${module}.ts`, content })
  }
  const cycle = findCycle(graph)
  if (cycle !== undefined) {
    throw new Error(
      `Schemas in different files reference each other (${
        cycle.join(" → ")
      }): define the records of a cycle in one file`
    )
  }
  out.push({
    path: "index.ts",
    content: `// Generated by \`deimos codegen\`. Do not edit.\n${
      parsed.map(({ file }) => `export * from "./${modules.get(file)}.js"`).join("\n")
    }\n`
  })
  return out
}

/**
 * Generates the modules of {@link generate} into `outDir`. Returns the files written.
 *
 * @since 0.1.0
 */
export const generateDirectory = (
  schemasDir: string,
  outDir: string,
  options: Options = {}
): ReadonlyArray<string> => {
  const files = generate(schemasDir, options)
  fs.mkdirSync(outDir, { recursive: true })
  return files.map((f) => {
    const target = path.join(outDir, f.path)
    fs.writeFileSync(target, f.content)
    return target
  })
}
