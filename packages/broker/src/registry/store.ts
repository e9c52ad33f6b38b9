/**
 * Schema Registry state: global schema ids, subjects with versions, compatibility configs. Pure apart from the
 * optional JSON file it is saved to.
 */
import type avro from "avsc"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Compat from "./compat.js"

/** A registry error in the Confluent shape, with its HTTP status. */
export interface RegistryFailure {
  readonly status: number
  readonly error_code: number
  readonly message: string
}

export const failure = (status: number, error_code: number, message: string): RegistryFailure => ({
  status,
  error_code,
  message
})

export const notFound = {
  subject: (s: string) => failure(404, 40401, `Subject '${s}' not found.`),
  version: (s: string, v: string | number) => failure(404, 40402, `Version ${v} not found for subject '${s}'.`),
  schema: (id?: number) => failure(404, 40403, id === undefined ? "Schema not found" : `Schema ${id} not found`),
  config: (s: string) => failure(404, 40408, `Subject '${s}' does not have subject-level compatibility configured`)
}

interface Version {
  readonly version: number
  readonly id: number
}

interface Saved {
  readonly schemas: ReadonlyArray<{ readonly id: number; readonly schema: string }>
  readonly subjects: Record<string, ReadonlyArray<Version>>
  readonly global: Compat.Level
  readonly configs: Record<string, Compat.Level>
}

export class Store {
  private readonly schemas = new Map<number, { readonly schema: string; readonly type: avro.Type }>()
  private readonly byCanonical = new Map<string, number>()
  private readonly subjects = new Map<string, Array<Version>>()
  private readonly configs = new Map<string, Compat.Level>()
  private nextId = 1

  constructor(private global: Compat.Level, private readonly file: string | undefined) {
    if (file !== undefined && fs.existsSync(file)) {
      const saved = JSON.parse(fs.readFileSync(file, "utf8")) as Saved
      for (const { id, schema } of saved.schemas) {
        const type = Compat.parse(schema)
        if (typeof type === "string") continue
        this.schemas.set(id, { schema, type })
        this.byCanonical.set(canonical(type), id)
        this.nextId = Math.max(this.nextId, id + 1)
      }
      for (const [s, versions] of Object.entries(saved.subjects)) this.subjects.set(s, [...versions])
      for (const [s, level] of Object.entries(saved.configs)) this.configs.set(s, level)
      this.global = saved.global
    }
  }

  private save() {
    if (this.file === undefined) return
    const saved: Saved = {
      schemas: [...this.schemas].map(([id, { schema }]) => ({ id, schema })),
      subjects: Object.fromEntries(this.subjects),
      global: this.global,
      configs: Object.fromEntries(this.configs)
    }
    fs.mkdirSync(path.dirname(this.file), { recursive: true })
    fs.writeFileSync(`${this.file}.tmp`, JSON.stringify(saved))
    fs.renameSync(`${this.file}.tmp`, this.file)
  }

  schemaById(id: number): { readonly schema: string } | RegistryFailure {
    const found = this.schemas.get(id)
    return found === undefined ? notFound.schema(id) : { schema: found.schema }
  }

  listSubjects(): ReadonlyArray<string> {
    return [...this.subjects.keys()].filter((s) => (this.subjects.get(s)?.length ?? 0) > 0).sort()
  }

  versions(subject: string): ReadonlyArray<number> | RegistryFailure {
    const versions = this.subjects.get(subject)
    return versions === undefined || versions.length === 0 ? notFound.subject(subject) : versions.map((v) => v.version)
  }

  version(subject: string, version: string): {
    readonly subject: string
    readonly version: number
    readonly id: number
    readonly schema: string
  } | RegistryFailure {
    const versions = this.subjects.get(subject)
    if (versions === undefined || versions.length === 0) return notFound.subject(subject)
    let found: Version | undefined
    if (version === "latest" || version === "-1") {
      found = versions[versions.length - 1]
    } else if (/^\d+$/.test(version) && Number(version) >= 1 && Number(version) <= 2 ** 31 - 1) {
      found = versions.find((v) => v.version === Number(version))
    } else {
      return failure(
        422,
        42202,
        `The specified version '${version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`
      )
    }
    if (found === undefined) return notFound.version(subject, version)
    return { subject, version: found.version, id: found.id, schema: this.schemas.get(found.id)!.schema }
  }

  /** Finds the version of `subject` holding this schema (POST /subjects/{s}). */
  lookup(subject: string, schema: string) {
    const type = Compat.parse(schema)
    if (typeof type === "string") return failure(422, 42201, `Invalid schema: ${type}`)
    const versions = this.subjects.get(subject)
    if (versions === undefined || versions.length === 0) return notFound.subject(subject)
    const id = this.byCanonical.get(canonical(type))
    const found = versions.find((v) => v.id === id)
    if (found === undefined) return notFound.schema()
    return { subject, version: found.version, id: found.id, schema: this.schemas.get(found.id)!.schema }
  }

  level(subject: string): Compat.Level {
    return this.configs.get(subject) ?? this.global
  }

  /** Checks `schema` against the subject's versions under its compatibility level. */
  compatibility(
    subject: string,
    schema: string,
    version: string
  ): { readonly is_compatible: boolean; readonly messages: ReadonlyArray<string> } | RegistryFailure {
    const type = Compat.parse(schema)
    if (typeof type === "string") return failure(422, 42201, `Invalid schema: ${type}`)
    const versions = this.subjects.get(subject)
    if (versions === undefined || versions.length === 0) return notFound.subject(subject)
    let against = versions
    if (version !== "latest") {
      const one = this.version(subject, version)
      if ("status" in one) return one
      against = versions.filter((v) => v.version <= one.version)
    }
    const existing = against.map((v) => this.schemas.get(v.id)!.type)
    const problems = Compat.check(this.level(subject), type, existing)
    return { is_compatible: problems.length === 0, messages: problems }
  }

  /** Registers `schema` under `subject`: the same schema keeps its id and version; otherwise checks compatibility. */
  register(subject: string, schema: string): { readonly id: number } | RegistryFailure {
    const type = Compat.parse(schema)
    if (typeof type === "string") return failure(422, 42201, `Invalid schema: ${type}`)
    const key = canonical(type)
    const versions = this.subjects.get(subject) ?? []
    const existingId = this.byCanonical.get(key)
    if (existingId !== undefined && versions.some((v) => v.id === existingId)) return { id: existingId }
    const problems = Compat.check(this.level(subject), type, versions.map((v) => this.schemas.get(v.id)!.type))
    if (problems.length > 0) {
      return failure(
        409,
        409,
        `Schema being registered is incompatible with an earlier schema for subject "${subject}" (${
          this.level(subject)
        }): ${problems.join("; ")}`
      )
    }
    let id = existingId
    if (id === undefined) {
      id = this.nextId++
      this.schemas.set(id, { schema: JSON.stringify(type.schema({ exportAttrs: true })), type })
      this.byCanonical.set(key, id)
    }
    versions.push({ version: (versions[versions.length - 1]?.version ?? 0) + 1, id })
    this.subjects.set(subject, versions)
    this.save()
    return { id }
  }

  deleteSubject(subject: string): ReadonlyArray<number> | RegistryFailure {
    const versions = this.subjects.get(subject)
    if (versions === undefined || versions.length === 0) return notFound.subject(subject)
    this.subjects.delete(subject)
    this.configs.delete(subject)
    this.save()
    return versions.map((v) => v.version)
  }

  getConfig(subject: string | undefined): { readonly compatibilityLevel: Compat.Level } | RegistryFailure {
    if (subject === undefined) return { compatibilityLevel: this.global }
    const level = this.configs.get(subject)
    return level === undefined ? notFound.config(subject) : { compatibilityLevel: level }
  }

  setConfig(subject: string | undefined, level: unknown): { readonly compatibility: Compat.Level } | RegistryFailure {
    const value = typeof level === "string" ? level.toUpperCase() : level
    if (!Compat.isLevel(value)) {
      return failure(422, 42203, `Invalid compatibility level. Valid values are: ${Compat.levels.join(", ")}`)
    }
    if (subject === undefined) this.global = value
    else this.configs.set(subject, value)
    this.save()
    return { compatibility: value }
  }
}

/** Same schema → same key: the parsed schema with defaults and attributes, names fully qualified. */
const canonical = (type: avro.Type): string => JSON.stringify(type.schema({ exportAttrs: true }))
