/**
 * Schema Registry state and operations, pure: global schema ids, subjects with versions, compatibility configs.
 * Reads return `Either<A, ApiError>`, changes return the new state with the answer; the HTTP side holds the state,
 * saves it and turns `ApiError`s into Confluent error bodies. `encode` / `decode` are the persisted form.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Avro from "./avro.js"
import * as Compatibility from "./compatibility.js"

/** An error answered in the Confluent shape `{ error_code, message }` with its HTTP status. */
export class ApiError extends Data.TaggedError("ApiError")<{
  readonly status: number
  readonly errorCode: number
  readonly message: string
}> {}

const apiError = (status: number, errorCode: number, message: string) => new ApiError({ status, errorCode, message })

/** Confluent's errors, by its codes. */
export const errors = {
  subjectNotFound: (subject: string) => apiError(404, 40401, `Subject '${subject}' not found.`),
  versionNotFound: (subject: string, version: string | number) =>
    apiError(404, 40402, `Version ${version} not found for subject '${subject}'.`),
  schemaNotFound: (id?: number) =>
    apiError(404, 40403, id === undefined ? "Schema not found" : `Schema ${id} not found`),
  subjectConfigNotFound: (subject: string) =>
    apiError(404, 40408, `Subject '${subject}' does not have subject-level compatibility configured`),
  invalidSchema: (why: string) => apiError(422, 42201, `Invalid schema: ${why}`),
  invalidVersion: (version: string) =>
    apiError(
      422,
      42202,
      `The specified version '${version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`
    ),
  invalidCompatibilityLevel: (level: unknown) =>
    apiError(
      422,
      42203,
      `Invalid compatibility level ${JSON.stringify(level)}. Valid values are: ${Compatibility.levels.join(", ")}`
    ),
  incompatible: (subject: string, level: Compatibility.Level, reasons: ReadonlyArray<string>) =>
    apiError(
      409,
      409,
      `Schema being registered is incompatible with an earlier schema for subject "${subject}" (${level}), details: [${
        reasons.join("; ")
      }]`
    )
} as const

/** A registered schema: its global id, canonical text and resolved tree. */
export interface StoredSchema {
  readonly id: number
  readonly schema: string
  readonly node: Avro.Node
}

/** One version of a subject. */
export interface SubjectVersion {
  readonly version: number
  readonly id: number
}

/** The whole registry. */
export interface State {
  readonly schemas: ReadonlyMap<number, StoredSchema>
  /** Canonical schema text → global id. */
  readonly ids: ReadonlyMap<string, number>
  /** Subjects with at least one version, versions oldest first. */
  readonly subjects: ReadonlyMap<string, ReadonlyArray<SubjectVersion>>
  readonly configs: ReadonlyMap<string, Compatibility.Level>
  /** Set by `PUT /config`; `defaultLevel` applies until then. */
  readonly global: Compatibility.Level | undefined
  /** The server's default (an option, not persisted). */
  readonly defaultLevel: Compatibility.Level
  /** How large a schema to register, look up or check may be (options, not persisted). */
  readonly limits: Avro.Limits
  readonly nextId: number
}

/** A change: the answer and the state after it (the same object when nothing changed). */
export interface Changed<A> {
  readonly result: A
  readonly state: State
}

export const empty = (defaultLevel: Compatibility.Level, limits: Avro.Limits = Avro.unlimited): State => ({
  schemas: new Map(),
  ids: new Map(),
  subjects: new Map(),
  configs: new Map(),
  global: undefined,
  defaultLevel,
  limits,
  nextId: 1
})

/** A subject's version as answered by the REST API. */
export interface VersionInfo {
  readonly subject: string
  readonly version: number
  readonly id: number
  readonly schema: string
}

/** A version path segment: a number in [1, 2^31-1], or "latest" / "-1". */
export const parseVersion = (version: string): Either.Either<number | "latest", ApiError> => {
  if (version === "latest" || version === "-1") return Either.right("latest")
  const n = /^\d{1,10}$/.test(version) ? Number(version) : NaN
  return n >= 1 && n <= 2 ** 31 - 1 ? Either.right(n) : Either.left(errors.invalidVersion(version))
}

/** A schema from a request, within the state's limits. */
const parseSchema = (state: State, schema: string): Either.Either<Avro.Parsed, ApiError> =>
  Either.mapLeft(Avro.parse(schema, state.limits), errors.invalidSchema)

const versionsOf = (state: State, subject: string): Either.Either<ReadonlyArray<SubjectVersion>, ApiError> => {
  const versions = state.subjects.get(subject)
  return versions === undefined ? Either.left(errors.subjectNotFound(subject)) : Either.right(versions)
}

const schemaOf = (state: State, id: number): StoredSchema => {
  const found = state.schemas.get(id)
  // Every version refers to a stored schema: `register` and `decode` keep it so.
  if (found === undefined) throw new Error(`Bug: schema ${id} referenced by a subject is missing`)
  return found
}

const info = (state: State, subject: string, v: SubjectVersion): VersionInfo => ({
  subject,
  version: v.version,
  id: v.id,
  schema: schemaOf(state, v.id).schema
})

/** The level that applies to a subject: its own, else the global one. */
export const levelOf = (state: State, subject: string): Compatibility.Level =>
  state.configs.get(subject) ?? state.global ?? state.defaultLevel

/** `GET /schemas/ids/{id}` */
export const schemaById = (state: State, id: number): Either.Either<{ readonly schema: string }, ApiError> => {
  const found = state.schemas.get(id)
  return found === undefined ? Either.left(errors.schemaNotFound(id)) : Either.right({ schema: found.schema })
}

/** `GET /schemas/ids/{id}/versions`: the subjects and versions holding a schema. */
export const subjectVersionsById = (
  state: State,
  id: number
): Either.Either<ReadonlyArray<{ readonly subject: string; readonly version: number }>, ApiError> =>
  state.schemas.has(id)
    ? Either.right(
      [...state.subjects].flatMap(([subject, versions]) =>
        versions.filter((v) => v.id === id).map((v) => ({ subject, version: v.version }))
      )
    )
    : Either.left(errors.schemaNotFound(id))

/** `GET /subjects`, sorted. */
export const subjects = (state: State): ReadonlyArray<string> => [...state.subjects.keys()].sort()

/** `GET /subjects/{s}/versions` */
export const versions = (state: State, subject: string): Either.Either<ReadonlyArray<number>, ApiError> =>
  Either.map(versionsOf(state, subject), (vs) => vs.map((v) => v.version))

/** `GET /subjects/{s}/versions/{v}` */
export const version = (state: State, subject: string, version: string): Either.Either<VersionInfo, ApiError> =>
  Either.gen(function*() {
    const wanted = yield* parseVersion(version)
    const vs = yield* versionsOf(state, subject)
    const found = wanted === "latest" ? vs[vs.length - 1] : vs.find((v) => v.version === wanted)
    if (found === undefined) return yield* Either.left(errors.versionNotFound(subject, version))
    return info(state, subject, found)
  })

/** `POST /subjects/{s}`: the version of the subject holding this schema. */
export const lookup = (state: State, subject: string, schema: string): Either.Either<VersionInfo, ApiError> =>
  Either.gen(function*() {
    const parsed = yield* parseSchema(state, schema)
    const vs = yield* versionsOf(state, subject)
    const id = state.ids.get(parsed.canonical)
    const found = vs.find((v) => v.id === id)
    if (found === undefined) return yield* Either.left(errors.schemaNotFound())
    return info(state, subject, found)
  })

/**
 * `POST /subjects/{s}/versions`: a schema the subject already holds answers its id and adds no version; a schema
 * known under another subject keeps its global id; otherwise the next id. The new version must pass the subject's
 * compatibility level (409 otherwise).
 */
export const register = (
  state: State,
  subject: string,
  schema: string
): Either.Either<Changed<{ readonly id: number }>, ApiError> =>
  Either.gen(function*() {
    const parsed = yield* parseSchema(state, schema)
    const vs = state.subjects.get(subject) ?? []
    const known = state.ids.get(parsed.canonical)
    if (known !== undefined && vs.some((v) => v.id === known)) return { result: { id: known }, state }
    const level = levelOf(state, subject)
    const reasons = Compatibility.check(level, parsed.node, vs.map((v) => schemaOf(state, v.id).node))
    if (reasons.length > 0) return yield* Either.left(errors.incompatible(subject, level, reasons))
    const id = known ?? state.nextId
    const next: State = {
      ...state,
      schemas: known === undefined
        ? new Map(state.schemas).set(id, { id, schema: parsed.canonical, node: parsed.node })
        : state.schemas,
      ids: known === undefined ? new Map(state.ids).set(parsed.canonical, id) : state.ids,
      subjects: new Map(state.subjects).set(subject, [...vs, { version: (vs[vs.length - 1]?.version ?? 0) + 1, id }]),
      nextId: known === undefined ? id + 1 : state.nextId
    }
    return { result: { id }, state: next }
  })

/**
 * `POST /compatibility/subjects/{s}/versions/{v}` checks against that one version (or the latest), in the
 * direction(s) of the subject's level; `POST /compatibility/subjects/{s}/versions` (`version` undefined) checks
 * as registering would. A subject without versions is compatible with anything when `latest` or all are asked.
 */
export const compatibility = (
  state: State,
  subject: string,
  schema: string,
  version: string | undefined
): Either.Either<{ readonly is_compatible: boolean; readonly messages: ReadonlyArray<string> }, ApiError> =>
  Either.gen(function*() {
    const parsed = yield* parseSchema(state, schema)
    const wanted = version === undefined ? undefined : yield* parseVersion(version)
    const level = levelOf(state, subject)
    const vs = state.subjects.get(subject)
    let against: ReadonlyArray<SubjectVersion>
    let effective = level
    if (vs === undefined) {
      if (typeof wanted === "number") return yield* Either.left(errors.subjectNotFound(subject))
      against = []
    } else if (wanted === undefined) {
      against = vs
    } else {
      const found = wanted === "latest" ? vs[vs.length - 1] : vs.find((v) => v.version === wanted)
      if (found === undefined) return yield* Either.left(errors.versionNotFound(subject, version!))
      against = [found]
      effective = level.replace("_TRANSITIVE", "") as Compatibility.Level
    }
    const messages = Compatibility.check(effective, parsed.node, against.map((v) => schemaOf(state, v.id).node))
    return { is_compatible: messages.length === 0, messages }
  })

/** `DELETE /subjects/{s}`: removes the subject, its versions and its config; answers the versions removed. */
export const deleteSubject = (
  state: State,
  subject: string
): Either.Either<Changed<ReadonlyArray<number>>, ApiError> =>
  Either.map(versionsOf(state, subject), (vs) => {
    const subjects = new Map(state.subjects)
    subjects.delete(subject)
    const configs = new Map(state.configs)
    configs.delete(subject)
    return { result: vs.map((v) => v.version), state: { ...state, subjects, configs } }
  })

/** `DELETE /subjects/{s}/versions/{v}`: removes one version (the last one removes the subject). */
export const deleteVersion = (
  state: State,
  subject: string,
  requested: string
): Either.Either<Changed<number>, ApiError> =>
  Either.gen(function*() {
    const found = yield* version(state, subject, requested)
    const rest = state.subjects.get(subject)!.filter((v) => v.version !== found.version)
    const subjects = new Map(state.subjects)
    if (rest.length === 0) subjects.delete(subject)
    else subjects.set(subject, rest)
    return { result: found.version, state: { ...state, subjects } }
  })

/** `GET /config`, `GET /config/{s}` (40408 without a subject config unless `defaultToGlobal`). */
export const getConfig = (
  state: State,
  subject: string | undefined,
  defaultToGlobal = false
): Either.Either<{ readonly compatibilityLevel: Compatibility.Level }, ApiError> => {
  if (subject === undefined) return Either.right({ compatibilityLevel: state.global ?? state.defaultLevel })
  const level = state.configs.get(subject) ?? (defaultToGlobal ? state.global ?? state.defaultLevel : undefined)
  return level === undefined
    ? Either.left(errors.subjectConfigNotFound(subject))
    : Either.right({ compatibilityLevel: level })
}

/** `PUT /config`, `PUT /config/{s}` with `{ "compatibility": LEVEL }`. */
export const setConfig = (
  state: State,
  subject: string | undefined,
  level: unknown
): Either.Either<Changed<{ readonly compatibility: Compatibility.Level }>, ApiError> => {
  if (!Compatibility.isLevel(level)) return Either.left(errors.invalidCompatibilityLevel(level))
  const next: State = subject === undefined
    ? { ...state, global: level }
    : { ...state, configs: new Map(state.configs).set(subject, level) }
  return Either.right({ result: { compatibility: level }, state: next })
}

/** `DELETE /config/{s}`: back to the global level; answers the level removed. */
export const deleteConfig = (
  state: State,
  subject: string
): Either.Either<Changed<{ readonly compatibilityLevel: Compatibility.Level }>, ApiError> => {
  const level = state.configs.get(subject)
  if (level === undefined) return Either.left(errors.subjectConfigNotFound(subject))
  const configs = new Map(state.configs)
  configs.delete(subject)
  return Either.right({ result: { compatibilityLevel: level }, state: { ...state, configs } })
}

const LevelSchema = Schema.Literal(...Compatibility.levels)

/** The persisted form (version 1; files written before `format` and `nextId` existed read the same). */
export const Persisted = Schema.Struct({
  format: Schema.optional(Schema.Literal(1)),
  nextId: Schema.optional(Schema.Int.pipe(Schema.positive())),
  schemas: Schema.Array(Schema.Struct({ id: Schema.Int.pipe(Schema.positive()), schema: Schema.String })),
  subjects: Schema.Record({
    key: Schema.String,
    value: Schema.NonEmptyArray(
      Schema.Struct({ version: Schema.Int.pipe(Schema.positive()), id: Schema.Int.pipe(Schema.positive()) })
    )
  }),
  configs: Schema.Record({ key: Schema.String, value: LevelSchema }),
  global: Schema.optional(Schema.NullOr(LevelSchema))
})

/** Persisted JSON text. */
export const encode = (state: State): string =>
  JSON.stringify(
    Persisted.make({
      format: 1,
      nextId: state.nextId,
      schemas: [...state.schemas.values()].map(({ id, schema }) => ({ id, schema })),
      subjects: Object.fromEntries(
        [...state.subjects].map(([s, vs]) => [s, vs.map(({ id, version }) => ({ version, id }))])
      ) as never,
      configs: Object.fromEntries(state.configs),
      global: state.global ?? null
    }),
    null,
    1
  )

/**
 * Reads persisted JSON text back; every schema is parsed again (without `limits`: they were accepted once) and
 * every version must point at one.
 */
export const decode = (
  text: string,
  defaultLevel: Compatibility.Level,
  limits: Avro.Limits = Avro.unlimited
): Either.Either<State, string> =>
  Either.gen(function*() {
    const saved = yield* Schema.decodeUnknownEither(Schema.parseJson(Persisted))(text).pipe(
      Either.mapLeft((error) => ParseResult.TreeFormatter.formatErrorSync(error))
    )
    const schemas = new Map<number, StoredSchema>()
    const ids = new Map<string, number>()
    for (const { id, schema } of saved.schemas) {
      const parsed = yield* Either.mapLeft(Avro.parse(schema), (why) => `schema ${id} is invalid: ${why}`)
      schemas.set(id, { id, schema: parsed.canonical, node: parsed.node })
      ids.set(parsed.canonical, id)
    }
    for (const [subject, vs] of Object.entries(saved.subjects)) {
      const missing = vs.find((v) => !schemas.has(v.id))
      if (missing !== undefined) {
        return yield* Either.left(`subject '${subject}' refers to unknown schema ${missing.id}`)
      }
    }
    const maxId = Math.max(0, ...schemas.keys())
    return {
      schemas,
      ids,
      subjects: new Map(Object.entries(saved.subjects)),
      configs: new Map(Object.entries(saved.configs)),
      global: saved.global ?? undefined,
      defaultLevel,
      limits,
      nextId: Math.max(saved.nextId ?? 1, maxId + 1)
    }
  })
